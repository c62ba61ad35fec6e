"""The sink's batch transaction on the real PostgreSQL, without Spark: rows are staged the way the
JDBC writer stages them, then repository.commit_batch moves them.

The rollups must equal SQL over heart_rate_readings after any mix of late, out-of-order,
clock-skewed, duplicated and replayed batches: they are merged from the rows each transaction
inserted, with no watermark.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

import psycopg2
import psycopg2.errors
import pytest
from psycopg2 import sql

from heartbeat_contract import BIN_COUNT, BIN_WIDTH_BPM, MIN_VALID_BPM
from heartbeat_stream.sinks.alert_store import AlertRules
from heartbeat_stream.sinks.batch_commit import CheckpointResetError, commit_batch
from tests.support.db import superuser_query

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


class Batches:
    """Stages and commits batches for one made-up sink, topic and set of customers."""

    def __init__(self, conn: psycopg2.extensions.connection) -> None:
        self.conn = conn
        self.tag = f"commit-{uuid.uuid4().hex[:10]}"
        self.sink_id = self.tag
        self.next_offset = 0

    def customer(self, name: str) -> str:
        return f"{self.tag}-{name}"

    def stage(self, batch_id: int, rows: list[tuple[str, datetime, int]], offsets=None) -> None:
        """Valid readings (customer, event time, bpm), each at a new offset unless given."""
        if offsets is None:
            offsets = range(self.next_offset, self.next_offset + len(rows))
            self.next_offset += len(rows)
        with self.conn, self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO stage_messages (sink_id, batch_id, kafka_topic, kafka_partition,"
                ' kafka_offset, customer_id, "timestamp", heart_rate)'
                " VALUES (%s, %s, %s, 0, %s, %s, %s, %s)",
                [
                    (self.sink_id, batch_id, self.tag, offset, self.customer(c), at, bpm)
                    for offset, (c, at, bpm) in zip(offsets, rows, strict=True)
                ],
            )

    def commit(self, batch_id: int):
        return commit_batch(self.conn, self.sink_id, batch_id, AlertRules())

    def query(self, sql: str) -> list[tuple]:
        with self.conn, self.conn.cursor() as cur:
            cur.execute(sql, {"tag": self.tag, "pattern": f"{self.tag}-%"})
            return cur.fetchall()

    def stored_rollups(self) -> dict[tuple, tuple]:
        rows = self.query(
            "SELECT customer_id, minute, readings, sum_bpm, min_bpm, max_bpm, bpm_bins, avg_bpm"
            " FROM heart_rate_minute WHERE customer_id LIKE %(pattern)s"
        )
        return {(c, m): tuple(rest) for c, m, *rest in rows}

    def rollups_from_readings(self) -> dict[tuple, tuple]:
        """The same aggregates computed here from the raw rows, bins included."""
        raw = self.query(
            'SELECT customer_id, "timestamp", heart_rate FROM heart_rate_readings'
            " WHERE kafka_topic = %(tag)s"
        )
        minutes: dict[tuple, list[int]] = {}
        for customer, at, bpm in raw:
            minutes.setdefault((customer, at.replace(second=0, microsecond=0)), []).append(bpm)
        expected = {}
        for key, rates in minutes.items():
            bins = [0] * BIN_COUNT
            for bpm in rates:
                bins[(bpm - MIN_VALID_BPM) // BIN_WIDTH_BPM] += 1
            expected[key] = (
                len(rates), sum(rates), min(rates), max(rates), bins, sum(rates) / len(rates)
            )  # fmt: skip
        return expected


@pytest.fixture
def batches(stack):
    conn = psycopg2.connect(stack.app_dsn)
    yield Batches(conn)
    conn.close()


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def test_rollups_equal_sql_after_late_out_of_order_skewed_and_replayed_batches(batches):
    on_time = [("A", at(-3 + i / 10), 60 + i) for i in range(30)]
    on_time += [("B", at(-3 + i / 10), 100 + i) for i in range(30)]
    batches.stage(0, on_time)
    batches.commit(0)

    # A device whose clock runs 4.5 minutes fast, then everyone else on time and out of order,
    # then readings from ten minutes ago: all counted in their own minutes.
    skewed = [("FAST", at(4.5 + i / 60), 90) for i in range(20)]
    out_of_order = [("A", at(-0.5), 70), ("B", at(-2.9), 41), ("A", at(-1.2), 180)]
    late = [("B", at(-10 + i / 20), 150) for i in range(10)]
    batches.stage(1, skewed + out_of_order + late)
    outcome = batches.commit(1)
    assert outcome.valid == 33
    assert not outcome.met_stored  # the plain move, without ON CONFLICT
    assert batches.stored_rollups() == batches.rollups_from_readings()

    # Spark replays batch 1 after a crash before its own commit: staged again, nothing added.
    batches.stage(1, skewed + out_of_order + late, offsets=range(60, 93))
    assert batches.commit(1).replayed
    assert batches.stored_rollups() == batches.rollups_from_readings()

    # A retried Spark task stages rows twice; another sink already inserted one of them.
    twice = [("A", at(-0.1), 99), ("B", at(-0.1), 120)]
    batches.stage(2, twice, offsets=[93, 94])
    batches.stage(2, twice, offsets=[93, 94])
    batches.stage(2, [("A", at(-3), 60)], offsets=[0])  # provenance of a batch-0 row
    outcome = batches.commit(2)
    assert (outcome.valid, outcome.met_stored) == (2, True)  # the move that skips stored rows
    stored = batches.stored_rollups()
    assert stored == batches.rollups_from_readings()
    assert sum(readings for readings, *_ in stored.values()) == 95
    assert batches.query("SELECT count(*) FROM stage_messages WHERE sink_id = %(tag)s") == [(0,)]


def test_a_reset_checkpoint_is_refused_not_dropped(batches):
    batches.stage(5, [("A", at(-1), 70)])
    batches.commit(5)
    batches.stage(3, [("A", at(-1), 71)])  # an old batch id with messages never seen
    with pytest.raises(CheckpointResetError, match="checkpoint was reset"):
        batches.commit(3)
    stored = batches.query("SELECT heart_rate FROM heart_rate_readings WHERE kafka_topic = %(tag)s")
    assert Counter(bpm for (bpm,) in stored) == {70: 1}


def partition_name(day: date) -> str:
    return f"heart_rate_readings_p{day:%Y%m%d}"


def existing_partitions(stack) -> set[str]:
    rows = superuser_query(stack, "SELECT partition::text FROM heart_rate_readings_partitions")
    return {name for (name,) in rows}


@pytest.fixture
def free_day(stack):
    """A UTC day within retention that has no partition yet; its partition is dropped after."""
    today = datetime.now(UTC).date()
    taken = existing_partitions(stack)
    day = next(
        (d for n in range(5, 26) if partition_name(d := today - timedelta(days=n)) not in taken),
        None,
    )
    assert day is not None, "every day from 5 to 25 days ago has a partition already"
    yield day
    # Only this test wrote that day.
    drop = sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(partition_name(day)))
    superuser_query(stack, drop)


def test_a_day_without_partition_gets_one_in_the_batch_and_each_reading_lands_once(
    stack, batches, free_day
):
    noon = datetime.combine(free_day, time(12), UTC)
    old = [("OLD", noon + timedelta(minutes=i), 70 + i) for i in range(3)]
    batches.stage(0, [*old, ("NOW", at(-1), 80)])
    assert batches.commit(0).valid == 4
    where = "SELECT tableoid::regclass::text, count(*) FROM heart_rate_readings"
    where += " WHERE kafka_topic = %(tag)s GROUP BY 1"
    today = partition_name(NOW.date())
    assert dict(batches.query(where)) == {partition_name(free_day): 3, today: 1}

    # Made again later (the job's timer, another batch of that day): nothing moves or doubles.
    with batches.conn, batches.conn.cursor() as cur:
        cur.execute("SELECT heartbeat_ensure_readings_partitions(%s::date[])", ([free_day],))
        assert cur.fetchone()[0] == 0
    # A replay of the batch, then another sink with the same messages: ON CONFLICT holds on
    # the partitioned table, the rows stay once each and the rollups count them once.
    batches.stage(0, [*old, ("NOW", at(-1), 80)], offsets=range(4))
    assert batches.commit(0).replayed
    batches.sink_id = f"{batches.tag}-other"
    batches.stage(0, [*old, ("NOW", at(-1), 80)], offsets=range(4))
    assert batches.commit(0).valid == 0
    assert dict(batches.query(where)) == {partition_name(free_day): 3, today: 1}
    assert batches.stored_rollups() == batches.rollups_from_readings()


def test_a_failed_batch_leaves_no_partition_behind(stack, batches, free_day):
    """The partition is made in the batch's transaction and rolled back with it; the batch
    stays staged for its retry."""
    noon = datetime.combine(free_day, time(12), UTC)
    batches.stage(0, [("OK", noon, 70), ("BAD", noon, 200)])  # 200 bpm breaks a CHECK
    # ... of the partition made for it, not "no partition found": the batch had made one.
    with pytest.raises(
        psycopg2.errors.CheckViolation, match="heart_rate_readings_heart_rate_check"
    ):
        batches.commit(0)
    assert partition_name(free_day) not in existing_partitions(stack)
    assert batches.query("SELECT count(*) FROM stage_messages WHERE sink_id = %(tag)s") == [(2,)]
    batches.query("DELETE FROM stage_messages WHERE sink_id = %(tag)s RETURNING 1")


# --- Alert rules in the batch transaction (no Spark: rows staged as the JDBC writer stages them)


def stage_out_of_range(batches: Batches, batch_id: int, rows: list[tuple[str, datetime, int]]):
    """Quarantined out-of-range readings, staged with their fields as parse_messages keeps them."""
    with batches.conn, batches.conn.cursor() as cur:
        for customer, moment, bpm in rows:
            cur.execute(
                "INSERT INTO stage_messages (sink_id, batch_id, kafka_topic, kafka_partition,"
                ' kafka_offset, customer_id, "timestamp", heart_rate, reason, detail, raw_value)'
                " VALUES (%s, %s, %s, 0, %s, %s, %s, %s, 'out_of_range', 'x', 'x')",
                (batches.sink_id, batch_id, batches.tag, batches.next_offset,
                 batches.customer(customer), moment, bpm),
            )  # fmt: skip
            batches.next_offset += 1


def every_second(customer: str, start: float, rates: list[int]) -> list[tuple[str, datetime, int]]:
    return [(customer, at(start) + timedelta(seconds=i), bpm) for i, bpm in enumerate(rates)]


def episodes_and_events(batches: Batches) -> tuple[list[tuple], list[tuple]]:
    episodes = batches.query(
        "SELECT customer_id, kind, severity, revision, muted, ended_at IS NULL, readings,"
        " extreme_bpm, threshold_bpm, alert_id FROM heart_rate_alerts"
        " WHERE sink_id = %(tag)s ORDER BY id"
    )
    events = batches.query(
        "SELECT customer_id, status, revision, alert_id, payload::json->>'kind' FROM alert_events"
        " WHERE sink_id = %(tag)s ORDER BY id"
    )
    return episodes, events


def test_critical_readings_open_and_resolve_an_episode_with_events(batches):
    stage_out_of_range(batches, 0, every_second("low", 0, [35] * 20))
    stage_out_of_range(batches, 0, every_second("glitch", 0, [200, 0, 2]))
    batches.commit(0)
    batches.stage(1, every_second("low", 1, [70]))
    batches.commit(1)
    episodes, events = episodes_and_events(batches)
    low = batches.customer("low")
    (episode,) = episodes
    assert episode[:9] == (low, "critical_low", "critical", 0, False, False, 20, 35, 40)
    assert [e[:3] for e in events] == [(low, "open", 0), (low, "resolved", 0)]
    assert {e[3] for e in events} == {episode[9]}
    assert batches.query("SELECT count(*) FROM rejected_readings WHERE kafka_topic = %(tag)s") == [
        (23,)
    ]


def test_per_customer_bounds_mute_and_cooldown(stack, batches):
    with psycopg2.connect(stack.admin_dsn) as admin, admin.cursor() as cur:
        cur.execute(
            "INSERT INTO customer_alert_settings (customer_id, high_bpm, sustain_seconds)"
            " VALUES (%s, 100, 10), (%s, NULL, 10)",
            (batches.customer("own"), batches.customer("muted")),
        )
        cur.execute(
            "UPDATE customer_alert_settings SET muted_until = now() + interval '1 hour'"
            " WHERE customer_id = %s",
            (batches.customer("muted"),),
        )
    admin.close()
    batches.stage(0, every_second("own", 0, [110] * 15) + every_second("other", 0, [110] * 15))
    batches.stage(0, every_second("muted", 0, [130] * 15))
    batches.commit(0)
    batches.stage(1, every_second("own", 0.5, [80]) + every_second("muted", 0.5, [80]))
    batches.commit(1)
    batches.stage(2, every_second("own", 1, [110] * 15))  # 30 s after the end: reopens
    batches.commit(2)
    batches.stage(3, every_second("own", 1.5, [80]))
    batches.commit(3)
    episodes, events = episodes_and_events(batches)
    own, muted = batches.customer("own"), batches.customer("muted")
    assert sorted(e[:7] for e in episodes) == [
        (muted, "tachycardia", "warning", 0, True, False, 15),
        (own, "tachycardia", "warning", 1, False, False, 30),
    ]
    assert {e[0]: e[8] for e in episodes}[own] == 100
    assert [e[:3] for e in events] == [
        (own, "open", 0), (own, "resolved", 0), (own, "open", 1), (own, "resolved", 1)
    ]  # fmt: skip


_HOURS_FROM_READINGS = """
SELECT customer_id, date_trunc('hour', "timestamp", 'UTC'), count(*), sum(heart_rate),
       min(heart_rate), max(heart_rate)
FROM heart_rate_readings WHERE kafka_topic = %(tag)s GROUP BY 1, 2
"""
_STORED_HOURS = """
SELECT customer_id, hour, readings, sum_bpm, min_bpm, max_bpm
FROM heart_rate_hour WHERE customer_id LIKE %(pattern)s
"""


def _transition_table_joins(node: dict) -> int:
    """Join nodes of a plan (auto_explain's JSON) with a transition table under each side."""

    def scans(n: dict) -> int:
        own = n.get("Node Type") == "Named Tuplestore Scan"
        return own + sum(scans(child) for child in n.get("Plans", []))

    children = node.get("Plans", [])
    joins = "Join Type" in node and len(children) == 2 and all(scans(c) for c in children)
    return joins + sum(_transition_table_joins(child) for child in children)


def test_the_hour_triggers_never_join_a_statements_old_and_new_rows(stack, batches):
    """An UPDATE of minutes moves their hours by its old and new rows (transition tables). Those
    have no statistics, so a join of the two became a nested loop comparing every updated row
    with every other: 393 s for one batch into 60,602 existing minutes (sql/015). auto_explain
    hands this session the plans of the triggers' own statements; the update is rolled back."""
    hour_ago = NOW.replace(minute=0) - timedelta(hours=1)
    batches.stage(0, [("J", hour_ago + timedelta(minutes=m), 70 + m) for m in range(0, 90, 10)])
    batches.commit(0)
    conn = psycopg2.connect(stack.admin_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("LOAD 'auto_explain'")
            for setting, value in (
                ("auto_explain.log_min_duration", "0"), ("auto_explain.log_format", "json"),
                ("auto_explain.log_nested_statements", "on"), ("auto_explain.log_level", "notice"),
                ("client_min_messages", "notice"),
            ):  # fmt: skip
                cur.execute("SELECT set_config(%s, %s, true)", (setting, value))
            cur.execute(
                "UPDATE heart_rate_minute SET readings = readings WHERE customer_id = %s",
                (batches.customer("J"),),
            )
        plans = [json.loads(n.split("plan:", 1)[1])["Plan"] for n in conn.notices if "plan:" in n]
    finally:
        conn.rollback()
        conn.close()
    tuplestore_plans = [plan for plan in plans if "Named Tuplestore Scan" in json.dumps(plan)]
    assert len(tuplestore_plans) >= 3, plans  # hours per customer, hours in all, their extremes
    assert [_transition_table_joins(plan) for plan in tuplestore_plans] == [0] * len(
        tuplestore_plans
    )


def test_hour_rollups_after_a_replayed_batch(batches):
    """heart_rate_hour follows the minutes by triggers; a replayed batch (Spark crashed before
    its own commit) changes no hour, per customer or over all customers."""
    hour_ago = NOW.replace(minute=0) - timedelta(hours=1)
    first = [("H", hour_ago + timedelta(minutes=m), 60 + m) for m in range(0, 120, 7)]
    batches.stage(0, first)
    batches.commit(0)
    # The next batch adds to minutes and hours that exist already (the triggers' update path).
    second = [("H", hour_ago + timedelta(minutes=m, seconds=30), 100) for m in range(0, 120, 7)]
    second += [("K", hour_ago + timedelta(minutes=5), 150)]
    batches.stage(1, second)
    batches.commit(1)
    hours = sorted(batches.query(_STORED_HOURS))
    assert hours == sorted(batches.query(_HOURS_FROM_READINGS))
    assert len(hours) >= 3 and sum(row[2] for row in hours) == len(first) + len(second)
    all_customers = "SELECT hour, readings, sum_bpm FROM heart_rate_hour_total"
    all_customers += " WHERE hour = ANY(%(hours)s) ORDER BY hour"
    with batches.conn, batches.conn.cursor() as cur:
        cur.execute(all_customers, {"hours": sorted({row[1] for row in hours})})
        totals = cur.fetchall()

    batches.stage(1, second, offsets=range(len(first), len(first) + len(second)))
    assert batches.commit(1).replayed
    assert sorted(batches.query(_STORED_HOURS)) == hours
    with batches.conn, batches.conn.cursor() as cur:
        cur.execute(all_customers, {"hours": sorted({row[1] for row in hours})})
        assert cur.fetchall() == totals
