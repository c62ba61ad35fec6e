"""The customer dashboard's numbers equal SQL over that customer's rows, at both resolutions.

A small history (three customers, two days, a reading a minute) is loaded with the history
loader into the tests' database. Ranges are whole hours in the past, so the minute and hour
rollups cover exactly the readings SQL selects: a 2-hour range reads minutes (and the series
every reading), a 28-hour range reads hours (and the series minutes).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from heartbeat_ops import history
from tests.superset.catalogue import CUSTOMER_CHARTS, CUSTOMER_DASHBOARD_SLUG
from tests.superset.superset_api import build_query_context, metric_labels
from tests.support.episodes import Episode, ago, insert_episodes

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class History:
    tag: str
    customers: list[str]
    end: datetime


@dataclass(frozen=True)
class Window:
    label: str
    start: datetime
    end: datetime

    @property
    def superset(self) -> str:
        """Superset's absolute range syntax (its clock is UTC)."""
        return f"{self.start:%Y-%m-%dT%H:%M:%S} : {self.end:%Y-%m-%dT%H:%M:%S}"


@pytest.fixture(scope="module")
def loaded_history(superuser_dsn: str) -> Iterator[History]:
    tag = f"test-history-{uuid.uuid4().hex[:8]}"
    plan = history.HistoryPlan(
        customers=3,
        days=2,
        interval_seconds=60,
        abnormal_rate=0.05,
        invalid_rate=0.01,
        tag=tag,
        customer_prefix=f"{tag}-H",
    )
    conn = psycopg2.connect(superuser_dsn)
    try:
        summary = history.load(conn, plan, show_progress=False)
        assert summary.readings > 8000 and summary.rejected > 0 and summary.episodes > 0
        yield History(tag, [f"{tag}-H{n:04d}" for n in (1, 2, 3)], plan.end)
    finally:
        history.delete(conn, tag)
        conn.close()


def _windows(end: datetime) -> list[Window]:
    hour = end.replace(minute=0, second=0, microsecond=0)
    return [
        Window("minutes", hour - timedelta(hours=3), hour - timedelta(hours=1)),
        Window("hours", hour - timedelta(hours=30), hour - timedelta(hours=2)),
        # Longer than 7 days: the series too is hourly (the history is 2 days of it).
        Window("week", hour - timedelta(days=8), hour - timedelta(hours=1)),
    ]


@pytest.fixture(scope="module")
def customer_charts(superset_client) -> dict[str, dict]:
    return {c["slice_name"]: c for c in superset_client.dashboard_charts(CUSTOMER_DASHBOARD_SLUG)}


def _micros(epoch_ms: object) -> int:
    """An epoch in milliseconds as whole microseconds: Superset's JSON float and PostgreSQL's
    numeric differ in the last digit printed, never in the microsecond."""
    return round(float(epoch_ms) * 1000)


def _query(superuser_dsn: str, sql: str, params: dict) -> list[tuple]:
    with psycopg2.connect(superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _result(client, chart: dict, window: Window, customers: list[str] | None) -> dict:
    answer = client.chart_data(
        build_query_context(chart, time_range=window.superset, customers=customers)
    )
    result = answer["result"][0]
    assert result.get("error") is None, (chart["slice_name"], result.get("error"))
    return result


def test_customer_dashboard_has_its_charts_and_filters(superset_client, customer_charts):
    dashboard = superset_client.get(f"/api/v1/dashboard/{CUSTOMER_DASHBOARD_SLUG}")["result"]
    metadata = json.loads(dashboard["json_metadata"])
    assert metadata["refresh_frequency"] == 10
    assert set(customer_charts) == set(CUSTOMER_CHARTS)
    for name, (viz, _) in CUSTOMER_CHARTS.items():
        assert customer_charts[name]["form_data"]["viz_type"] == viz, name
    filters = {f["name"]: f for f in metadata["native_filter_configuration"]}
    customer = filters["Customer"]
    assert customer["id"] == "NATIVE_FILTER-customer"  # what the alerts table's links set
    assert customer["targets"][0]["column"]["name"] == "customer_id"
    assert customer["controlValues"]["multiSelect"] is False
    assert customer["controlValues"]["enableEmptyFilter"] is True  # a customer is required
    assert customer["scope"]["excluded"] == []
    assert filters["Time range"]["filterType"] == "filter_time"


@pytest.mark.parametrize("resolution", ["minutes", "hours"])
def test_customer_statistics_equal_sql(
    superset_client, customer_charts, loaded_history, superuser_dsn, resolution
):
    window = next(w for w in _windows(loaded_history.end) if w.label == resolution)
    customer = loaded_history.customers[1]
    ((total, average, minimum, maximum),) = _query(
        superuser_dsn,
        "SELECT count(*), avg(heart_rate), min(heart_rate), max(heart_rate)"
        " FROM heart_rate_readings WHERE customer_id = %(c)s"
        ' AND "timestamp" >= %(start)s AND "timestamp" < %(end)s',
        {"c": customer, "start": window.start, "end": window.end},
    )
    assert total > 100
    expected = {
        "Customer readings": total,
        "Customer average heart rate": pytest.approx(float(average)),
        "Customer minimum heart rate": minimum,
        "Customer maximum heart rate": maximum,
    }
    for name, value in expected.items():
        chart = customer_charts[name]
        result = _result(superset_client, chart, window, [customer])
        assert result["data"][0][metric_labels(chart)[0]] == value, name
        # With a customer, long ranges read that customer's hours, never all customers' hours.
        assert "heart_rate_hour_total" not in result["query"], name


@pytest.mark.parametrize(
    ("resolution", "bucket"),
    [
        ("minutes", '"timestamp"'),
        ("hours", "date_trunc('minute', \"timestamp\")"),
        ("week", "date_trunc('hour', \"timestamp\")"),
    ],
)
def test_customer_series_is_every_reading_then_minutes_then_hours(
    superset_client, customer_charts, loaded_history, superuser_dsn, resolution, bucket
):
    """Up to 6 hours a point per reading; beyond, a point per minute with its min/avg/max;
    beyond 7 days, a point per hour."""
    window = next(w for w in _windows(loaded_history.end) if w.label == resolution)
    customer = loaded_history.customers[0]
    rows = _query(
        superuser_dsn,
        f"SELECT extract(epoch FROM {bucket}) * 1000, avg(heart_rate)::float,"
        " min(heart_rate), max(heart_rate) FROM heart_rate_readings"
        ' WHERE customer_id = %(c)s AND "timestamp" >= %(start)s AND "timestamp" < %(end)s'
        " GROUP BY 1 ORDER BY 1",
        {"c": customer, "start": window.start, "end": window.end},
    )
    chart = customer_charts["Customer heart rate"]
    result = _result(superset_client, chart, window, [customer])
    average, low, high = metric_labels(chart)
    points = sorted(
        (row["time"], pytest.approx(row[average]), row[low], row[high]) for row in result["data"]
    )
    assert points == [(float(t), a, lo, hi) for t, a, lo, hi in rows]
    assert result["rowcount"] < chart["form_data"]["row_limit"]


@pytest.mark.parametrize("resolution", ["minutes", "hours"])
def test_customer_distribution_equals_sql(
    superset_client, customer_charts, loaded_history, superuser_dsn, resolution
):
    window = next(w for w in _windows(loaded_history.end) if w.label == resolution)
    customer = loaded_history.customers[2]
    raw = dict(
        _query(
            superuser_dsn,
            "SELECT (heart_rate / 5) * 5, count(*) FROM heart_rate_readings"
            ' WHERE customer_id = %(c)s AND "timestamp" >= %(start)s AND "timestamp" < %(end)s'
            " GROUP BY 1",
            {"c": customer, "start": window.start, "end": window.end},
        )
    )
    chart = customer_charts["Customer heart-rate distribution"]
    result = _result(superset_client, chart, window, [customer])
    (label,) = metric_labels(chart)
    assert {row["bpm_bin"]: row[label] for row in result["data"]} == raw


def test_customer_episodes_and_quarantine_equal_sql(
    superset_client, customer_charts, loaded_history, superuser_dsn
):
    """Over the whole history: the customer's episodes and quarantined messages, newest first,
    as SQL lists them (the quarantine table keeps the 20 most recent)."""
    start = loaded_history.end - timedelta(days=3)
    window = Window("all", start, loaded_history.end + timedelta(minutes=1))
    customer = loaded_history.customers[0]
    episodes = _query(
        superuser_dsn,
        "SELECT kind, extract(epoch FROM started_at) * 1000, extreme_bpm, readings"
        " FROM heart_rate_alerts WHERE customer_id = %(c)s"
        " AND last_reading_at >= %(start)s AND last_reading_at < %(end)s"
        " ORDER BY started_at DESC LIMIT 100",
        {"c": customer, "start": window.start, "end": window.end},
    )
    assert episodes
    result = _result(superset_client, customer_charts["Customer episodes"], window, [customer])
    assert [
        (r["kind"], _micros(r["started_at"]), r["extreme_bpm"], r["readings"])
        for r in result["data"]
    ] == [(kind, _micros(at), bpm, n) for kind, at, bpm, n in episodes]

    quarantined = _query(
        superuser_dsn,
        "SELECT reason, raw_value FROM rejected_readings WHERE customer_id = %(c)s"
        " AND ingested_at >= %(start)s AND ingested_at < %(end)s"
        " ORDER BY ingested_at DESC, kafka_partition, kafka_offset LIMIT 20",
        {"c": customer, "start": window.start, "end": window.end},
    )
    assert quarantined
    assert all(f'"customer_id":"{customer}"' in raw for _, raw in quarantined)
    chart = customer_charts["Customer quarantined messages"]
    result = _result(superset_client, chart, window, [customer])
    assert [(r["reason"], r["raw_value"]) for r in result["data"]] == quarantined


def test_all_customers_long_range_reads_hours_equal_to_minutes(
    superset_client, loaded_history, superuser_dsn
):
    """The main dashboard without a customer over a long range reads all customers' hours
    (heart_rate_hour_total); its numbers equal SQL over every minute rollup of the range."""
    window = next(w for w in _windows(loaded_history.end) if w.label == "hours")
    ((total, sum_bpm, minimum, maximum),) = _query(
        superuser_dsn,
        "SELECT sum(readings), sum(sum_bpm), min(min_bpm), max(max_bpm) FROM heart_rate_minute"
        " WHERE minute >= %(start)s AND minute < %(end)s",
        {"start": window.start, "end": window.end},
    )
    charts = {c["slice_name"]: c for c in superset_client.dashboard_charts()}
    expected = {
        "Total readings": total,
        "Average heart rate": pytest.approx(float(sum_bpm) / float(total)),
        "Minimum heart rate": minimum,
        "Maximum heart rate": maximum,
    }
    for name, value in expected.items():
        result = _result(superset_client, charts[name], window, None)
        assert result["data"][0][metric_labels(charts[name])[0]] == value, name
        assert "heart_rate_hour_total" in result["query"], name


def test_customer_episodes_show_open_episodes_whatever_the_range(
    superset_client, customer_charts, superuser_dsn
):
    """An episode still open whose last reading is older than the range (a device silent for two
    days, a tachycardia open since yesterday) is listed; one closed as long ago is not. The
    table equals SQL: open episodes, plus closed ones whose last reading is in the range."""
    tag = f"test-open-{uuid.uuid4().hex[:8]}"
    customer = f"{tag}-H0001"
    with psycopg2.connect(superuser_dsn) as conn, conn.cursor() as cur:
        insert_episodes(
            cur,
            tag,
            [
                Episode(customer, "device_silent", ago(h=47), ago(h=48)),
                Episode(customer, "tachycardia", ago(h=30), ago(h=26), None, 131, 900, 120),
                Episode(customer, "bradycardia", ago(h=40), ago(h=39), ago(h=39), 44, 20, 50),
                Episode(customer, "tachycardia", ago(m=50), ago(m=40), ago(m=40), 128, 60, 120),
            ],
        )  # fmt: skip
        cur.execute("SELECT now()")
        now = cur.fetchone()[0].astimezone(UTC)  # Superset reads ranges as UTC
    conn.close()
    window = Window("recent", now - timedelta(hours=2), now + timedelta(minutes=1))
    try:
        expected = _query(
            superuser_dsn,
            "SELECT kind, extract(epoch FROM started_at) * 1000, ended_at IS NULL"
            " FROM heart_rate_alerts WHERE customer_id = %(c)s AND (ended_at IS NULL"
            " OR (last_reading_at >= %(start)s AND last_reading_at < %(end)s))"
            " ORDER BY started_at DESC LIMIT 100",
            {"c": customer, "start": window.start, "end": window.end},
        )
        chart = customer_charts["Customer episodes"]
        rows = _result(superset_client, chart, window, [customer])["data"]
    finally:
        with psycopg2.connect(superuser_dsn) as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM heart_rate_alerts WHERE sink_id = %s", (tag,))
        conn.close()
    assert [(kind, is_open) for kind, _, is_open in expected] == [
        ("tachycardia", False),
        ("tachycardia", True),
        ("device_silent", True),
    ]
    assert [(r["kind"], _micros(r["started_at"]), r["status"] == "open") for r in rows] == [
        (kind, _micros(at), is_open) for kind, at, is_open in expected
    ]
