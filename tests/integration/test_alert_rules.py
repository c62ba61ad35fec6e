"""Alert rules end to end: Kafka -> the spark-submit job -> PostgreSQL -> the alerts topic.

One job serves the behaviour tests (each with its own customers, T18-...); the crash test runs
its own. Every test reads the job's own alerts topic to its end offsets, never the live one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from heartbeat_contract import encode_reading
from heartbeat_contract.alerts import (
    BRADYCARDIA,
    CRITICAL_HIGH,
    CRITICAL_LOW,
    TACHYCARDIA,
    alert_id,
)
from heartbeat_ops.config import StackConfig
from heartbeat_stream.config import sink_id_for
from tests.support.alert_events import deduplicated, read_to_end
from tests.support.db import superuser_query
from tests.support.kafka import client_args, delete_topics
from tests.support.sink_activity import kill_inside_the_batch_transaction
from tests.support.stream_job import StreamJob, wait_for

pytestmark = pytest.mark.integration

WAIT = 300  # seconds: a loaded 2-core machine, a job that may be catching up
RULES = {
    "HEARTBEAT_ALERT_SUSTAIN_SECONDS": "10",
    "HEARTBEAT_ALERT_COOLDOWN_SECONDS": "600",
    "HEARTBEAT_CRITICAL_SUSTAIN_SECONDS": "15",
    "HEARTBEAT_CRITICAL_MIN_READINGS": "3",
}


def new_topics(stack: StackConfig) -> tuple[str, str]:
    name = f"test-t18-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(**client_args(stack.kafka_bootstrap_servers))
    admin.create_topics([
        NewTopic(name, num_partitions=3, replication_factor=1),
        NewTopic(f"{name}-alerts", num_partitions=1, replication_factor=1),
    ])  # fmt: skip
    admin.close()
    return name, f"{name}-alerts"


def customer(name: str) -> str:
    return f"T18-{uuid.uuid4().hex[:6]}-{name}"


def every_second(who: str, start: datetime, rates: list[int]) -> list[tuple[str, datetime, int]]:
    return [(who, start + timedelta(seconds=i), bpm) for i, bpm in enumerate(rates)]


@dataclass
class Rig:
    stack: StackConfig
    topic: str
    alerts_topic: str
    sink_id: str
    job: StreamJob | None = None

    def send(self, rows: list[tuple[str, datetime, int]]) -> None:
        producer = KafkaProducer(**client_args(self.stack.kafka_bootstrap_servers), acks="all")
        for who, moment, bpm in sorted(rows, key=lambda row: row[1]):
            key, value = encode_reading(who, moment, bpm)
            producer.send(self.topic, key=key, value=value)
        producer.flush()
        producer.close()

    def query(self, sql: str, *params: object) -> list[tuple]:
        return superuser_query(self.stack, sql, *params)

    def stored(self) -> int:
        """Messages of the topic in PostgreSQL: valid readings plus quarantined ones."""
        return self.query(
            "SELECT (SELECT count(*) FROM heart_rate_readings WHERE kafka_topic = %s)"
            " + (SELECT count(*) FROM rejected_readings WHERE kafka_topic = %s)",
            self.topic,
            self.topic,
        )[0][0]

    def unpublished(self) -> int:
        """The sink's alert events still waiting in the outbox."""
        return self.query(
            "SELECT count(*) FROM alert_events WHERE sink_id = %s AND published_at IS NULL",
            self.sink_id,
        )[0][0]

    def valid_readings(self, who: str) -> int:
        return self.query(
            "SELECT count(*) FROM heart_rate_readings WHERE kafka_topic = %s AND customer_id = %s",
            self.topic,
            who,
        )[0][0]

    def episodes(self, who: str) -> list[tuple]:
        return self.query(
            "SELECT kind, severity, started_at, ended_at, extreme_bpm, readings, revision, muted,"
            " threshold_bpm, alert_id FROM heart_rate_alerts"
            " WHERE sink_id = %s AND customer_id = %s ORDER BY started_at",
            self.sink_id,
            who,
        )

    def events(self, who: str) -> list[dict]:
        everything = read_to_end(self.stack.kafka_bootstrap_servers, self.alerts_topic)
        return [event for event in everything if event["customer_id"] == who]

    def statuses(self, who: str) -> list[tuple[str, str, int]]:
        return [(e["kind"], e["status"], e["revision"]) for e in self.events(who)]

    def alerts_cli(self, *args: str) -> str:
        """`heartbeat-ops alerts ...` as an operator runs it, on the tests' database."""
        result = subprocess.run(
            [str(Path(sys.executable).parent / "heartbeat-ops"), "alerts", *args],
            env={**os.environ, **self.stack.environment()},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture(scope="module")
def rig(stack, tmp_path_factory) -> Iterator[Rig]:
    """One running job over a topic of the module's own, warmed up by one landed reading."""
    topic, alerts_topic = new_topics(stack)
    workdir = tmp_path_factory.mktemp("alert-rules")
    checkpoint = str(workdir / "checkpoint")
    rig = Rig(stack, topic, alerts_topic, sink_id_for(checkpoint))
    rig.job = StreamJob(
        stack, topic, checkpoint, workdir / "job.log", KAFKA_ALERTS_TOPIC=alerts_topic, **RULES
    )
    try:
        rig.job.start()
        warm = customer("warm")
        rig.send(every_second(warm, datetime.now(UTC) - timedelta(minutes=1), [70]))
        wait_for(lambda: rig.valid_readings(warm) == 1, WAIT, "the job to start and commit")
        yield rig
    finally:
        rig.job.stop()
        delete_topics(stack.kafka_bootstrap_servers, topic, alerts_topic)


def start_time() -> datetime:
    return (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0)


def test_sustained_critical_low_opens_then_resolves_and_a_glitch_raises_nothing(rig):
    low, glitch = customer("L"), customer("G")
    t0 = start_time()
    rig.send(
        every_second(low, t0, [35] * 30 + [70])
        + every_second(glitch, t0, [70] * 10 + [200] + [70] * 19)
    )
    wait_for(lambda: len(rig.events(low)) >= 2, WAIT, "the critical episode's two events")
    events = rig.events(low)
    assert [(e["kind"], e["status"], e["revision"]) for e in events] == [
        (CRITICAL_LOW, "open", 0),
        (CRITICAL_LOW, "resolved", 0),
    ]
    assert {e["alert_id"] for e in events} == {alert_id(low, CRITICAL_LOW, t0)}
    opened, resolved = events
    assert (opened["severity"], opened["ended_at"], opened["threshold_bpm"]) == (
        "critical",
        None,
        40,
    )
    assert (resolved["extreme_bpm"], resolved["readings"]) == (35, 30)
    assert datetime.fromisoformat(resolved["ended_at"]) == t0 + timedelta(seconds=30)
    ((kind, severity, started, ended, *_),) = rig.episodes(low)
    assert (kind, severity, started, ended) == (
        CRITICAL_LOW, "critical", t0, t0 + timedelta(seconds=30)
    )  # fmt: skip
    # The quarantined readings stay quarantined: only the in-range one is a stored reading.
    assert rig.valid_readings(low) == 1

    wait_for(lambda: rig.valid_readings(glitch) == 29, WAIT, "the glitch customer's readings")
    assert rig.episodes(glitch) == [] and rig.events(glitch) == []


def test_own_high_bound_set_while_the_job_runs_alerts_that_customer_only(rig):
    mine, other = customer("X"), customer("Y")
    rig.alerts_cli("set", mine, "--high", "100")
    assert "high bpm         100" in rig.alerts_cli("show", mine)
    t0 = start_time()
    rig.send(every_second(mine, t0, [110] * 20 + [80]) + every_second(other, t0, [110] * 20 + [80]))
    wait_for(lambda: len(rig.events(mine)) >= 2, WAIT, "the tachycardia episode's events")
    assert rig.statuses(mine) == [(TACHYCARDIA, "open", 0), (TACHYCARDIA, "resolved", 0)]
    ((kind, _, started, _, extreme, readings, _, _, threshold, _),) = rig.episodes(mine)
    assert (kind, started, extreme, readings, threshold) == (TACHYCARDIA, t0, 110, 20, 100)
    wait_for(lambda: rig.valid_readings(other) == 21, WAIT, "the other customer's readings")
    assert rig.episodes(other) == [] and rig.events(other) == []
    rig.alerts_cli("reset", mine)


def test_raising_the_bound_mid_episode_resolves_it_with_the_next_reading(rig):
    who = customer("R")
    rig.alerts_cli("set", who, "--high", "100")
    t0 = start_time()
    rig.send(every_second(who, t0, [110] * 15))
    wait_for(lambda: rig.statuses(who) == [(TACHYCARDIA, "open", 0)], WAIT, "the open event")
    rig.alerts_cli("set", who, "--high", "120")
    rig.send(every_second(who, t0 + timedelta(seconds=15), [110] * 5))  # no longer abnormal
    wait_for(lambda: len(rig.events(who)) >= 2, WAIT, "the resolved event")
    assert rig.statuses(who) == [(TACHYCARDIA, "open", 0), (TACHYCARDIA, "resolved", 0)]
    ((_, _, _, ended, _, readings, _, _, threshold, _),) = rig.episodes(who)
    assert (ended, readings, threshold) == (t0 + timedelta(seconds=15), 15, 100)


def test_reopened_within_the_cooldown_publishes_open_again_under_the_same_alert(rig):
    """Told `resolved`, on call hears when the condition is back: an `open` of revision 1."""
    who = customer("C")
    t0 = start_time()
    rig.send(every_second(who, t0, [130] * 15 + [80]))
    wait_for(lambda: len(rig.events(who)) >= 2, WAIT, "the first episode's events")
    rig.send(every_second(who, t0 + timedelta(seconds=60), [140] * 15 + [80]))  # 44 s later
    wait_for(lambda: len(rig.events(who)) >= 4, WAIT, "the reopened episode's events")
    assert rig.statuses(who) == [
        (TACHYCARDIA, "open", 0),
        (TACHYCARDIA, "resolved", 0),
        (TACHYCARDIA, "open", 1),
        (TACHYCARDIA, "resolved", 1),
    ]
    assert {e["alert_id"] for e in rig.events(who)} == {alert_id(who, TACHYCARDIA, t0)}
    ((kind, _, started, ended, extreme, readings, revision, *_),) = rig.episodes(who)
    assert (kind, started, ended, extreme, readings, revision) == (
        TACHYCARDIA, t0, t0 + timedelta(seconds=75), 140, 30, 1
    )  # fmt: skip


def test_a_muted_customer_is_recorded_not_published(rig):
    who, loud = customer("M"), customer("N")
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    rig.alerts_cli("set", who, "--mute-until", until)
    t0 = start_time()
    rig.send(every_second(who, t0, [130] * 15 + [80]) + every_second(loud, t0, [130] * 15 + [80]))
    wait_for(lambda: len(rig.events(loud)) >= 2, WAIT, "the unmuted customer's events")
    wait_for(lambda: rig.valid_readings(who) == 16, WAIT, "the muted customer's readings")
    ((kind, _, _, ended, _, _, _, muted, _, _),) = rig.episodes(who)
    assert (kind, ended, muted) == (TACHYCARDIA, t0 + timedelta(seconds=15), True)
    assert rig.events(who) == []
    assert rig.query("SELECT count(*) FROM alert_events WHERE customer_id = %s", who) == [(0,)]


# --- Crash: SIGKILL mid-batch, restart ----------------------------------------------------------


def patients(t0: datetime) -> tuple[dict[str, str], list[tuple[str, datetime, int]]]:
    """One patient per kind this rule set builds, each with an episode that opens and ends."""
    kinds = {
        customer("tachy"): (TACHYCARDIA, [150] * 40 + [80]),
        customer("brady"): (BRADYCARDIA, [45] * 40 + [80]),
        customer("clow"): (CRITICAL_LOW, [30] * 40 + [80]),
        customer("chigh"): (CRITICAL_HIGH, [200] * 40 + [80]),
    }
    rows = []
    for who, (_, rates) in kinds.items():
        rows += every_second(who, t0 + timedelta(seconds=30), [70] * 30) + every_second(
            who, t0 + timedelta(seconds=60), rates
        )
    return {who: kind for who, (kind, _) in kinds.items()}, rows


def test_an_alerts_topic_out_of_reach_holds_back_only_the_alerts(stack, tmp_path):
    """The alerts topic is missing while the job runs (the broker creates none on its own):
    every batch still commits its readings and records its events, and the job keeps running.
    Once the topic exists the waiting events go out without another reading, each episode's
    open and resolved once. (Publishing used to fail the batch after its retry budget, so the
    job exited at every start and no reading landed: a CI run's fault module lost its whole job
    so.)"""
    topic, made_alerts_topic = new_topics(stack)
    late = f"{topic}-late-alerts"  # created once every reading has landed
    checkpoint = str(tmp_path / "checkpoint")
    rig = Rig(stack, topic, late, sink_id_for(checkpoint))
    expected, rows = patients(start_time() - timedelta(minutes=5))
    job = StreamJob(stack, topic, checkpoint, tmp_path / "job.log",
                    KAFKA_ALERTS_TOPIC=late, HEARTBEAT_MAX_OFFSETS_PER_TRIGGER="100",
                    HEARTBEAT_SINK_RETRY_SECONDS="10",
                    HEARTBEAT_SILENT_AFTER_SECONDS="86400",  # no event of its own to publish
                    **RULES)  # fmt: skip
    try:
        rig.send(rows)
        job.start()
        wait_for(lambda: rig.stored() == len(rows), WAIT, "every reading, the alerts topic missing")
        assert job.process is not None and job.process.poll() is None, job.log_tail()
        assert rig.unpublished() == 2 * len(expected), "each episode's open and resolved, waiting"
        assert "publishing alerts failed" in job.log_path.read_text(errors="replace")
        admin = KafkaAdminClient(**client_args(stack.kafka_bootstrap_servers))
        admin.create_topics([NewTopic(late, num_partitions=1, replication_factor=1)])
        admin.close()
        # No reading arrives any more: the silence check's timer publishes what waits.
        wait_for(lambda: rig.unpublished() == 0, 120, "the waiting events published")
        everything = read_to_end(stack.kafka_bootstrap_servers, late)
        for who in expected:
            ((*_, stored_id),) = rig.episodes(who)
            mine = deduplicated([e for e in everything if e["customer_id"] == who])
            assert [(e["status"], e["alert_id"]) for e in mine] == [
                ("open", stored_id),
                ("resolved", stored_id),
            ]
        assert job.process.poll() is None, "the job ran throughout"
    finally:
        job.stop()
        delete_topics(stack.kafka_bootstrap_servers, topic, made_alerts_topic, late)


def test_sigkill_mid_batch_every_episode_once_and_its_events_at_least_once(stack, tmp_path):
    topic, alerts_topic = new_topics(stack)
    checkpoint = str(tmp_path / "checkpoint")
    rig = Rig(stack, topic, alerts_topic, sink_id_for(checkpoint))
    t0 = start_time() - timedelta(minutes=5)
    expected, rows = patients(t0)
    # Calm customers around them, so that the episodes span many small batches.
    for i in range(40):
        rows += every_second(customer(f"calm{i}"), t0, [60 + i % 20] * 160)
    job = StreamJob(stack, topic, checkpoint, tmp_path / "job.log",
                    KAFKA_ALERTS_TOPIC=alerts_topic, HEARTBEAT_MAX_OFFSETS_PER_TRIGGER="400",
                    **RULES)  # fmt: skip
    try:
        rig.send(rows)
        job.start()
        wait_for(lambda: rig.stored() > 0, WAIT, "the first batch to commit", poll=0.05)
        committed = rig.stored()
        kill_inside_the_batch_transaction(stack, job)  # held on a lock, killed while open
        assert rig.stored() == committed, "the killed batch transaction committed rows"
        assert rig.stored() < len(rows), "the job drained everything before the crash"
        job.start()
        wait_for(lambda: rig.stored() == len(rows), WAIT, "the restarted job to catch up")
        for who in expected:
            wait_for(lambda who=who: len(rig.events(who)) >= 2, WAIT, f"{who}'s events")
        everything = read_to_end(stack.kafka_bootstrap_servers, alerts_topic)
        for who, kind in expected.items():
            ((stored_kind, _, started, ended, *_, stored_id),) = rig.episodes(who)
            assert (stored_kind, started, ended) == (
                kind, t0 + timedelta(seconds=60), t0 + timedelta(seconds=100)
            )  # fmt: skip
            mine = deduplicated([e for e in everything if e["customer_id"] == who])
            assert [(e["status"], e["revision"], e["alert_id"]) for e in mine] == [
                ("open", 0, stored_id),
                ("resolved", 0, stored_id),
            ]
        assert rig.unpublished() == 0
    finally:
        job.stop()
        delete_topics(stack.kafka_bootstrap_servers, topic, alerts_topic)
