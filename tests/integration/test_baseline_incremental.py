"""The baseline pass recomputes only the days whose hourly rollups changed since the last pass
(baseline_day_sources), with the same results as computing every day from scratch: after new
readings land in some customers' days (a second history load over the same customers), and
after readings are deleted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg2
import pytest

from heartbeat_ops import history
from heartbeat_stream.config import JobConfig
from heartbeat_stream.runtime import baseline

pytestmark = pytest.mark.integration

END = datetime(2026, 8, 1, tzinfo=UTC)  # a midnight; no other test's days are near it
DAYS = 10
CONFIG = JobConfig()


@pytest.fixture
def plans(stack):
    run = uuid.uuid4().hex[:8]
    prefix = f"ti{run}-H"
    first = history.HistoryPlan(
        customers=6, days=DAYS, interval_seconds=300, end=END, seed=21,
        tag=f"test-incremental-{run}", customer_prefix=prefix,
        scripts=history.baseline_scenario(END, DAYS, seed=21),
    )  # fmt: skip
    # More readings for the first three customers on the last two days: their days change.
    more = history.HistoryPlan(
        customers=3, days=2, interval_seconds=600, end=END, seed=22,
        tag=f"test-incremental-{run}-b", customer_prefix=prefix,
    )  # fmt: skip
    superuser = psycopg2.connect(stack.admin_dsn)
    try:
        yield superuser, prefix, first, more
    finally:
        for plan in (more, first):
            history.delete(superuser, plan.tag)
        with superuser, superuser.cursor() as cur:
            for table in ("customer_resting_days", "customer_baselines", "baseline_day_sources"):
                cur.execute(f"DELETE FROM {table} WHERE customer_id LIKE %s", (f"{prefix}%",))
            cur.execute("DELETE FROM heart_rate_alerts WHERE sink_id LIKE %s", (f"inc-{run}%",))
            cur.execute("DELETE FROM alert_events WHERE sink_id LIKE %s", (f"inc-{run}%",))
        superuser.close()


def _pass(app_db, sink: str) -> baseline.PassSummary:
    with app_db, app_db.cursor() as cur:
        summary, _ = baseline.run_pass(cur, CONFIG, sink, END)
    return summary


def _results(app_db, prefix: str, sink: str) -> tuple[list, list, list]:
    """Resting days, baselines and the sink's episodes (without ids and write times)."""
    like = f"{prefix}%"
    with app_db, app_db.cursor() as cur:
        cur.execute(
            "SELECT customer_id, day, resting_bpm, hours FROM customer_resting_days"
            " WHERE customer_id LIKE %s ORDER BY 1, 2",
            (like,),
        )
        days = cur.fetchall()
        cur.execute(
            "SELECT customer_id, baseline_bpm, days, latest_day, latest_bpm FROM customer_baselines"
            " WHERE customer_id LIKE %s ORDER BY 1",
            (like,),
        )
        baselines = cur.fetchall()
        cur.execute(
            "SELECT customer_id, kind, started_at, ended_at, readings, extreme_bpm, threshold_bpm,"
            " baseline_bpm FROM heart_rate_alerts WHERE sink_id = %s ORDER BY 1, 3",
            (sink,),
        )
        return days, baselines, cur.fetchall()


def _from_scratch(superuser, app_db, prefix: str, sink: str) -> tuple[list, list, list]:
    """Forget everything the passes kept about these customers, and compute it all again."""
    with superuser, superuser.cursor() as cur:
        for table in ("customer_resting_days", "customer_baselines", "baseline_day_sources"):
            cur.execute(f"DELETE FROM {table} WHERE customer_id LIKE %s", (f"{prefix}%",))
    _pass(app_db, sink)
    return _results(app_db, prefix, sink)


def _days_with_readings_of(superuser, tag: str) -> int:
    """(customer, UTC day) pairs of complete window days a load's readings fall in."""
    with superuser, superuser.cursor() as cur:
        cur.execute(
            "SELECT count(DISTINCT (customer_id, (\"timestamp\" AT TIME ZONE 'UTC')::date))"
            ' FROM heart_rate_readings WHERE kafka_topic = %s AND "timestamp" < %s',
            (tag, END),
        )
        return cur.fetchone()[0]


def test_only_changed_days_are_recomputed_with_the_results_of_a_full_pass(app_db, plans):
    superuser, prefix, first, more = plans
    run = prefix.split("-")[0][2:]
    sink = f"inc-{run}"
    history.load(superuser, first, show_progress=False)
    initial = _pass(app_db, sink)
    assert initial.recomputed_days >= first.customers * DAYS  # every day is new
    assert initial.opened == 1  # the scenario's shifted customer
    assert _pass(app_db, sink).recomputed_days == 0  # nothing changed: nothing recomputed

    # New readings land in three customers' last two days: only those days are recomputed ...
    before = _results(app_db, prefix, sink)
    history.load(superuser, more, show_progress=False)
    touched = _days_with_readings_of(superuser, more.tag)
    assert touched == 3 * 2
    after = _pass(app_db, sink)
    assert after.recomputed_days == touched
    incremental = _results(app_db, prefix, sink)
    assert incremental[0] != before[0]  # their resting rates did move
    # ... and the days and baselines equal those of a pass that computes every day from scratch
    # (its own sink: its episode opens with the baseline of now, not of the first pass).
    scratch = _from_scratch(superuser, app_db, prefix, f"{sink}-full")
    assert scratch[:2] == incremental[:2]
    assert [e[:3] for e in scratch[2]] == [e[:3] for e in incremental[2]]

    # Readings deleted (the second load, with the rollups of its three customers whole): their
    # days go, the others stay, as from scratch.
    kept = {f"{prefix}{n:04d}" for n in (4, 5, 6)}
    gone = [day for day in incremental[0] if day[0] not in kept]
    history.delete(superuser, more.tag)
    deleted = _pass(app_db, sink)
    assert deleted.recomputed_days == 0 and deleted.resting_days == len(gone) > 0
    incremental = _results(app_db, prefix, sink)
    assert {c for c, *_ in incremental[0]} == kept
    assert _from_scratch(superuser, app_db, prefix, f"{sink}-full")[:2] == incremental[:2]
