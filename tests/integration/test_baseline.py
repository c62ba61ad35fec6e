"""Personal baselines end to end over the hourly rollups: a history loaded with the history
loader (40 customers x 30 days, three of them scripted by `history.baseline_scenario`), then the
job's baseline pass as the job's own role. Exactly one `elevated_resting` episode, for the
customer whose resting rate rose 8 bpm for the last two days; none for day-to-day variation of
+-3 bpm, one hard workout, or anyone else; a second pass changes nothing; baselines only for
customers with enough days."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from kafka import KafkaConsumer, KafkaProducer

from heartbeat_contract.alerts import ELEVATED_RESTING, OPEN, alert_id
from heartbeat_ops import history
from heartbeat_stream.config import JobConfig
from heartbeat_stream.runtime import baseline
from tests.support import figures
from tests.support.kafka import client_args
from tests.support.stream_job import wait_for

pytestmark = pytest.mark.integration

END = datetime(2026, 9, 1, tzinfo=UTC)  # a midnight: the 30 days before it are complete days
DAYS = 30
CONFIG = JobConfig()  # the defaults: margin 4 bpm, 2 days, window 28 days, min 7 days


@pytest.fixture(scope="module")
def superuser(stack):
    conn = psycopg2.connect(stack.admin_dsn)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def loaded(superuser):
    """The scenario (40 customers, 30 days, a reading every 5 min), plus customers with too
    little: 3 with only 5 days, 2 whose hours are too sparse (a reading every 20 min)."""
    run = uuid.uuid4().hex[:8]
    plans = {
        "full": history.HistoryPlan(
            customers=40, days=DAYS, interval_seconds=300, end=END, seed=7,
            tag=f"test-baseline-{run}", customer_prefix=f"tb{run}-H",
            scripts=history.baseline_scenario(END, DAYS, seed=7),
        ),
        "short": history.HistoryPlan(
            customers=3, days=5, interval_seconds=300, end=END, seed=8,
            tag=f"test-baseline-{run}-s", customer_prefix=f"tb{run}-S",
        ),
        "sparse": history.HistoryPlan(
            customers=2, days=DAYS, interval_seconds=1200, end=END, seed=9,
            tag=f"test-baseline-{run}-p", customer_prefix=f"tb{run}-P",
        ),
    }  # fmt: skip
    loaded_in = {}
    for name, plan in plans.items():
        loaded_in[name] = history.load(superuser, plan, show_progress=False).seconds
    figures.record("history loader, baseline scenario", seconds=round(loaded_in["full"], 1),
                   messages=plans["full"].messages)  # fmt: skip
    yield run, plans
    with superuser, superuser.cursor() as cur:
        cur.execute("DELETE FROM heart_rate_alerts WHERE sink_id = %s", (f"baseline-{run}",))
        cur.execute("DELETE FROM alert_events WHERE sink_id = %s", (f"baseline-{run}",))
        for table in ("customer_resting_days", "customer_baselines"):
            cur.execute(f"DELETE FROM {table} WHERE customer_id LIKE %s", (f"tb{run}-%",))
    for plan in plans.values():
        history.delete(superuser, plan.tag)


def _pass(app_db, sink: str) -> tuple[baseline.PassSummary, list[dict]]:
    with app_db, app_db.cursor() as cur:
        return baseline.run_pass(cur, CONFIG, sink, END)


def _state(app_db, run: str, sink: str) -> tuple[list, list, list, list]:
    like = f"tb{run}-%"
    with app_db, app_db.cursor() as cur:
        cur.execute("SELECT * FROM heart_rate_alerts WHERE sink_id = %s ORDER BY id", (sink,))
        episodes = cur.fetchall()
        cur.execute("SELECT * FROM alert_events WHERE sink_id = %s ORDER BY id", (sink,))
        events = cur.fetchall()
        cur.execute(
            "SELECT * FROM customer_resting_days WHERE customer_id LIKE %s ORDER BY 1, 2", (like,)
        )
        days = cur.fetchall()
        cur.execute(
            "SELECT * FROM customer_baselines WHERE customer_id LIKE %s ORDER BY 1", (like,)
        )
        return episodes, events, days, cur.fetchall()


def test_one_episode_for_the_shifted_customer_and_none_else(app_db, loaded):
    run, plans = loaded
    sink = f"baseline-{run}"
    full = plans["full"]
    ids = [f"{full.customer_prefix}{n:04d}" for n in range(1, full.customers + 1)]
    shifted = ids[history.SHIFTED]

    first, events = _pass(app_db, sink)
    figures.record("baseline pass", seconds=round(first.seconds, 2), summary=str(first))
    episodes, outbox, days, baselines = _state(app_db, run, sink)

    # Exactly one episode, the shifted customer's, open since the start of the two days.
    assert [(e[2], e[3]) for e in episodes] == [(shifted, ELEVATED_RESTING)]
    with app_db, app_db.cursor() as cur:
        cur.execute(
            "SELECT started_at, ended_at, readings, extreme_bpm, threshold_bpm, baseline_bpm,"
            " severity, muted, alert_id FROM heart_rate_alerts WHERE sink_id = %s",
            (sink,),
        )
        started, ended, count, extreme, threshold, base, severity, muted, alert = cur.fetchone()
        cur.execute(
            "SELECT baseline_bpm, latest_bpm FROM customer_baselines WHERE customer_id = %s",
            (shifted,),
        )
        stored_baseline, latest = cur.fetchone()
    assert started == END - timedelta(days=2) and ended is None
    assert count == 2 and severity == "warning" and not muted
    assert base == pytest.approx(stored_baseline)
    assert threshold == pytest.approx(stored_baseline + CONFIG.baseline_margin_bpm)
    # The shift shows up whole: about 8 bpm above the baseline.
    assert 6.0 <= latest - stored_baseline <= 10.0
    assert extreme >= round(threshold)
    assert alert == alert_id(shifted, ELEVATED_RESTING, started)
    # Its open event is in the outbox, in the same transaction.
    assert [(e["alert_id"], e["status"], e["readings"]) for e in events] == [(alert, OPEN, 2)]
    assert [row[3] for row in outbox] == [alert]

    # Resting days: every complete day of the full plan's customers; none for the sparse ones.
    per_customer = {}
    for customer, _day, _bpm, _hours in days:
        per_customer[customer] = per_customer.get(customer, 0) + 1
    assert all(per_customer.get(c) == DAYS for c in ids)
    assert not any(c.startswith(plans["sparse"].customer_prefix) for c in per_customer)
    # Baselines exist exactly for the customers with enough days before the judged two.
    assert sorted(b[0] for b in baselines) == ids
    assert all(b[2] == DAYS - CONFIG.baseline_elevated_days for b in baselines)
    short = [c for c in per_customer if c.startswith(plans["short"].customer_prefix)]
    assert short and all(per_customer[c] == 5 for c in short)

    # A second pass changes nothing at all.
    second, again = _pass(app_db, sink)
    assert (second.resting_days, second.baselines, second.opened, second.reopened) == (0, 0, 0, 0)
    assert (second.resolved, second.events, again) == (0, 0, [])
    assert _state(app_db, run, sink) == (episodes, outbox, days, baselines)


def test_refresh_publishes_the_open_event_after_its_commit(stack, superuser, loaded, fresh_topic,
                                                          tmp_path):  # fmt: skip
    """The job's own entry (`refresh`: its sink id, its role, its alerts topic): the episode's
    open event reaches the alerts topic and is marked published."""
    run, plans = loaded
    # model_copy, not keyword settings: the environment (the world's alerts topic) would win.
    config = JobConfig.model_validate(stack.model_dump(by_alias=True)).model_copy(
        update={"kafka_alerts_topic": fresh_topic, "checkpoint_dir": str(tmp_path / "checkpoint")}
    )
    full = plans["full"]
    shifted = f"{full.customer_prefix}{history.SHIFTED + 1:04d}"
    with superuser, superuser.cursor() as cur:  # event ids are global: an episode is one event
        cur.execute("DELETE FROM alert_events WHERE customer_id LIKE %s", (f"tb{run}-%",))
    producer = KafkaProducer(**client_args(config.kafka_bootstrap_servers), acks="all")
    try:
        summary = baseline.refresh(config, producer, now=END)
    finally:
        producer.close()
        with superuser, superuser.cursor() as cur:
            cur.execute(
                "SELECT alert_id, published_at IS NOT NULL FROM alert_events WHERE sink_id = %s",
                (config.sink_id,),
            )
            outbox = cur.fetchall()
            cur.execute("DELETE FROM heart_rate_alerts WHERE sink_id = %s", (config.sink_id,))
            cur.execute("DELETE FROM alert_events WHERE sink_id = %s", (config.sink_id,))
    assert summary.opened == summary.events == 1
    consumer = KafkaConsumer(
        fresh_topic, **client_args(config.kafka_bootstrap_servers), auto_offset_reset="earliest"
    )
    published = []

    def received() -> bool:
        for records in consumer.poll(timeout_ms=1000).values():
            published.extend((r.key.decode(), json.loads(r.value)) for r in records)
        return bool(published)

    try:
        wait_for(received, timeout=60, what="the open event on the alerts topic")
        received()  # anything more would be a duplicate
    finally:
        consumer.close()
    (key, event), *others = published
    assert others == [] and key == shifted
    assert (event["kind"], event["status"], event["severity"]) == (
        ELEVATED_RESTING,
        OPEN,
        "warning",
    )
    assert event["started_at"] == (END - timedelta(days=2)).isoformat()
    assert outbox == [(event["alert_id"], True)]


# The lifecycle, on hours written straight into the rollups (the pass reads nothing else): each
# day 24 hours of 60 readings, 3 hours at the day's resting level and 21 hours 20 bpm above, so
# the day's resting rate is 43.5 + 5k for a level in bin k (40 + 5k .. 44 + 5k).
LIFECYCLE_END = datetime(2026, 6, 1, tzinfo=UTC)
_HOURS = """
INSERT INTO heart_rate_hour (customer_id, hour, readings, sum_bpm, min_bpm, max_bpm, bpm_bins)
SELECT %(customer)s, %(day)s::timestamptz + make_interval(hours => h), 60, 60 * v, v, v,
       array_fill(0, ARRAY[(v - 40) / 5]) || 60 || array_fill(0, ARRAY[28 - (v - 40) / 5])
FROM generate_series(0, 23) AS h,
     LATERAL (SELECT CASE WHEN h < 3 THEN %(level)s ELSE %(level)s + 20 END AS v) l
"""
LOW, HIGH = 60, 65  # resting rates 63.5 and 68.5: 5 bpm apart, the margin is 4


def _days(superuser, customer: str, first: datetime, levels: list[int]) -> None:
    with superuser, superuser.cursor() as cur:
        for offset, level in enumerate(levels):
            day = first + timedelta(days=offset)
            cur.execute(_HOURS, {"customer": customer, "day": day, "level": level})


@pytest.fixture
def lifecycle(superuser):
    run = uuid.uuid4().hex[:8]
    customers = {name: f"tl{run}-{name}" for name in ("plain", "muted", "off")}
    with superuser, superuser.cursor() as cur:
        cur.execute(
            "INSERT INTO customer_alert_settings (customer_id, muted_until) VALUES (%s, %s)",
            (customers["muted"], LIFECYCLE_END + timedelta(days=30)),
        )
        cur.execute(
            "INSERT INTO customer_alert_settings (customer_id, baseline_alerts) VALUES (%s, false)",
            (customers["off"],),
        )
    yield f"baseline-{run}", customers
    with superuser, superuser.cursor() as cur:
        cur.execute("DELETE FROM heart_rate_alerts WHERE sink_id = %s", (f"baseline-{run}",))
        cur.execute("DELETE FROM alert_events WHERE sink_id = %s", (f"baseline-{run}",))
        for table in ("heart_rate_hour", "customer_resting_days", "customer_baselines",
                      "customer_alert_settings"):  # fmt: skip
            cur.execute(f"DELETE FROM {table} WHERE customer_id LIKE %s", (f"tl{run}-%",))


def _episodes(app_db, sink: str) -> list[tuple]:
    with app_db, app_db.cursor() as cur:
        cur.execute(
            "SELECT customer_id, started_at, ended_at, revision, readings, muted"
            " FROM heart_rate_alerts WHERE sink_id = %s ORDER BY customer_id",
            (sink,),
        )
        return cur.fetchall()


def _judge(app_db, sink: str, day: datetime) -> list[tuple[str, str, int]]:
    with app_db, app_db.cursor() as cur:
        _, events = baseline.run_pass(cur, CONFIG, sink, day)
    return [(e["customer_id"], e["status"], e["revision"]) for e in events]


def test_lifecycle_resolve_reopen_mute_and_off(superuser, app_db, lifecycle):
    sink, customers = lifecycle
    plain, muted, off = customers["plain"], customers["muted"], customers["off"]
    d = LIFECYCLE_END
    first = d - timedelta(days=20)
    for customer in customers.values():  # 18 ordinary days, then 2 elevated ones
        _days(superuser, customer, first, [LOW] * 18 + [HIGH] * 2)

    # Opens for everyone with baseline alerts on; only the unmuted customer publishes.
    assert _judge(app_db, sink, d) == [(plain, "open", 0)]
    opened = d - timedelta(days=2)
    assert _episodes(app_db, sink) == [
        (muted, opened, None, 0, 2, True),
        (plain, opened, None, 0, 2, False),
    ]
    with app_db, app_db.cursor() as cur:  # `off` has a baseline: its setting alone stops it
        cur.execute("SELECT days FROM customer_baselines WHERE customer_id = %s", (off,))
        assert cur.fetchone() == (18,)
    # A day below resolves it (ended at the end of that day), silently when muted.
    for customer in (plain, muted):
        _days(superuser, customer, d, [LOW])
    assert _judge(app_db, sink, d + timedelta(days=1)) == [(plain, "resolved", 0)]
    ended = d + timedelta(days=1)
    assert [e[2] for e in _episodes(app_db, sink)] == [ended, ended]
    # Elevated again from the next day: within the cooldown of that end, the episode reopens
    # (same row, revision 1, an `open` of that revision: its `resolved` went out) ...
    _days(superuser, plain, d + timedelta(days=1), [HIGH, HIGH])
    assert _judge(app_db, sink, d + timedelta(days=3)) == [(plain, "open", 1)]
    assert _episodes(app_db, sink)[1] == (plain, opened, None, 1, 4, False)
    # ... and its next end publishes `resolved` with revision 1.
    _days(superuser, plain, d + timedelta(days=3), [LOW])
    assert _judge(app_db, sink, d + timedelta(days=4)) == [(plain, "resolved", 1)]
    assert _episodes(app_db, sink)[1] == (plain, opened, d + timedelta(days=4), 1, 4, False)
    assert _judge(app_db, sink, d + timedelta(days=4)) == []  # and again: nothing changes
