"""The history loader writes what the pipeline would have stored: rollups (minute, hour and
all-customer hour) equal SQL over the loaded readings, episodes equal the job's own episode logic
run over each customer's whole series, glitches are quarantined with their customer, and
`delete` removes exactly what the load wrote."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from heartbeat_ops import history
from heartbeat_stream.transforms.episodes import Thresholds, advance, runs_of

pytestmark = pytest.mark.integration

# The minute rollups of the tag's readings, recomputed from them: what the sink would store.
_BINS = ", ".join(f"(count(*) FILTER (WHERE (heart_rate - 40) / 5 = {k}))::int" for k in range(29))
_MINUTES_FROM_RAW = f"""
SELECT customer_id, date_trunc('minute', "timestamp", 'UTC'), count(*)::int, sum(heart_rate),
       min(heart_rate), max(heart_rate), ARRAY[{_BINS}]
FROM heart_rate_readings WHERE kafka_topic = %(tag)s GROUP BY 1, 2 ORDER BY 1, 2
"""
# The element-wise sum of the rollups' bins.
_BINS_SUM = "ARRAY[" + ", ".join(f"sum(bpm_bins[{k}])::int" for k in range(1, 30)) + "]"


@pytest.fixture(scope="module")
def superuser(stack):
    conn = psycopg2.connect(stack.admin_dsn)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def loaded(superuser):
    tag = f"test-loader-{uuid.uuid4().hex[:8]}"
    plan = history.HistoryPlan(
        customers=4,
        days=0.5,
        interval_seconds=15,
        end=datetime(2026, 11, 1, 12, 0, 7, tzinfo=UTC),
        abnormal_rate=0.05,
        invalid_rate=0.01,
        tag=tag,
        customer_prefix=f"{tag}-H",
        chunk_readings=1_000,  # many chunks: minutes and episodes cross chunk boundaries
    )
    summary = history.load(superuser, plan, show_progress=False)
    yield plan, summary
    history.delete(superuser, tag)


def _rows(conn, sql: str, params: dict) -> list[tuple]:
    with conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def test_counts_and_time_span(superuser, loaded):
    plan, summary = loaded
    assert summary.readings + summary.rejected == plan.messages == 4 * 2880
    assert summary.rejected > 0
    ((count, first, last, customers),) = _rows(
        superuser,
        'SELECT count(*), min("timestamp"), max("timestamp"), count(DISTINCT customer_id)'
        " FROM heart_rate_readings WHERE kafka_topic = %(tag)s",
        {"tag": plan.tag},
    )
    assert count == summary.readings
    assert customers == 4
    assert plan.start <= first and last < plan.end
    assert last - first > timedelta(hours=11)


def test_minute_rollups_equal_sql_over_the_readings(superuser, loaded):
    plan, _ = loaded
    stored = _rows(
        superuser,
        "SELECT customer_id, minute, readings, sum_bpm, min_bpm, max_bpm, bpm_bins"
        " FROM heart_rate_minute WHERE customer_id LIKE %(prefix)s ORDER BY 1, 2",
        {"prefix": plan.customer_prefix + "%"},
    )
    assert stored == _rows(superuser, _MINUTES_FROM_RAW, {"tag": plan.tag})
    assert len(stored) > 4 * 700


def test_hour_rollups_equal_sql_over_the_minutes(superuser, loaded):
    plan, _ = loaded
    params = {"prefix": plan.customer_prefix + "%"}
    expected = _rows(
        superuser,
        f"SELECT customer_id, date_trunc('hour', minute, 'UTC'), sum(readings)::int,"
        f" sum(sum_bpm), min(min_bpm), max(max_bpm), {_BINS_SUM}"
        f" FROM heart_rate_minute"
        f" WHERE customer_id LIKE %(prefix)s GROUP BY 1, 2 ORDER BY 1, 2",
        params,
    )
    assert expected == _rows(
        superuser,
        "SELECT customer_id, hour, readings, sum_bpm, min_bpm, max_bpm, bpm_bins"
        " FROM heart_rate_hour WHERE customer_id LIKE %(prefix)s ORDER BY 1, 2",
        params,
    )
    # Its hours are in the past (2026-11-01), where no other test writes: the all-customer
    # hours hold exactly this load's.
    hours = {"start": plan.start - timedelta(hours=1), "end": plan.end}
    assert _rows(
        superuser,
        f"SELECT date_trunc('hour', minute, 'UTC'), sum(readings), sum(sum_bpm), min(min_bpm),"
        f" max(max_bpm), {_BINS_SUM}, count(DISTINCT customer_id)::int"
        f" FROM heart_rate_minute"
        f" WHERE minute >= %(start)s AND minute < %(end)s GROUP BY 1 ORDER BY 1",
        hours,
    ) == _rows(
        superuser,
        "SELECT hour, readings, sum_bpm, min_bpm, max_bpm, bpm_bins, customers"
        " FROM heart_rate_hour_total WHERE hour >= %(start)s AND hour < %(end)s ORDER BY 1",
        hours,
    )


def test_episodes_equal_the_job_logic_over_each_whole_series(superuser, loaded):
    plan, summary = loaded
    thresholds = Thresholds()
    expected = []
    for customer in (f"{plan.customer_prefix}{n:04d}" for n in range(1, 5)):
        readings = _rows(
            superuser,
            'SELECT "timestamp", heart_rate FROM heart_rate_readings'
            ' WHERE kafka_topic = %(tag)s AND customer_id = %(c)s ORDER BY "timestamp"',
            {"tag": plan.tag, "c": customer},
        )
        _, changes = advance(None, runs_of(readings, thresholds), thresholds.sustain)
        expected += [
            (customer, c.kind, c.started_at, c.ended_at, c.extreme_bpm, c.readings) for c in changes
        ]
    stored = _rows(
        superuser,
        "SELECT customer_id, kind, started_at, ended_at, extreme_bpm, readings"
        " FROM heart_rate_alerts WHERE sink_id = %(tag)s",
        {"tag": plan.tag},
    )
    assert sorted(stored) == sorted(expected)
    assert summary.episodes == len(stored) > 0
    assert {kind for _, kind, *_ in stored} == {"tachycardia", "bradycardia"}


def test_glitches_are_quarantined_with_their_customer(superuser, loaded):
    plan, summary = loaded
    rows = _rows(
        superuser,
        "SELECT reason, customer_id, raw_value FROM rejected_readings WHERE kafka_topic = %(tag)s",
        {"tag": plan.tag},
    )
    assert len(rows) == summary.rejected
    assert {reason for reason, *_ in rows} == {"out_of_range"}
    assert all(raw.startswith(f'{{"customer_id":"{customer}"') for _, customer, raw in rows)


def test_delete_removes_exactly_the_load(superuser, stack):
    tag = f"test-loader-{uuid.uuid4().hex[:8]}"
    plan = history.HistoryPlan(
        customers=2,
        days=0.1,
        interval_seconds=30,
        end=datetime(2026, 10, 1, tzinfo=UTC),
        tag=tag,
        customer_prefix=f"{tag}-H",
    )
    history.load(superuser, plan, show_progress=False)
    history.delete(superuser, tag)
    params = {"tag": tag, "prefix": f"{tag}-H%"}
    for table, where in (
        ("heart_rate_readings", "kafka_topic = %(tag)s"),
        ("rejected_readings", "kafka_topic = %(tag)s"),
        ("heart_rate_alerts", "sink_id = %(tag)s"),
        ("heart_rate_minute", "customer_id LIKE %(prefix)s"),
        ("heart_rate_hour", "customer_id LIKE %(prefix)s"),
    ):
        assert _rows(superuser, f"SELECT count(*) FROM {table} WHERE {where}", params) == [(0,)]
    assert _rows(
        superuser,
        "SELECT count(*) FROM heart_rate_hour_total WHERE hour >= %(start)s AND hour < %(end)s",
        {"start": plan.start - timedelta(hours=1), "end": plan.end},
    ) == [(0,)]
