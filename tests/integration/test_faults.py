"""Faults under steady producer load, each followed by the ledger check and the time to recover.

One job runs for the whole module, restarted by a supervisor-like loop whenever it exits, over
one topic. Each test starts the real producer (50 readings/s, 5% malformed) under a customer
prefix of its own, injects one fault into the tests' own world (its broker, its PostgreSQL:
never the live stack's), measures how long the lag
takes to return to normal, stops the producer with SIGTERM and checks the ledger of every
producer run so far: each reading reported as sent is stored exactly once, valid or quarantined
with its expected reason, and the minute rollups equal SQL over the stored rows. (Sharing the
job saves a Spark start per test; a failed test makes the later ledgers fail too.) The job's
retention timer runs every few seconds throughout, as it would on a long-running stack.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psycopg2 import sql

from heartbeat_contract import encode_reading
from heartbeat_contract.alerts import alert_id
from heartbeat_ops.config import StackConfig
from heartbeat_stream.config import sink_id_for
from heartbeat_stream.sinks import partitions
from tests.support import figures, harness, kafka
from tests.support.alert_events import deduplicated, read_to_end
from tests.support.db import superuser_query
from tests.support.ledger import Expected, wait_until_balanced
from tests.support.sink_activity import BatchHold
from tests.support.stream_job import StreamJob, wait_for

pytestmark = pytest.mark.integration

RATE = 50.0
CATCH_UP = 300.0  # seconds a recovery may take at most on the shared 2-core machine
SUSTAIN_SECONDS = 10  # alert episodes open after 10 s abnormal (the scripted patient: 40 s)
RETENTION_INTERVAL = 5  # seconds between the job's retention passes (default: an hour)


class Rig:
    """The module's topic, supervised job and the ledgers of every producer run so far."""

    def __init__(self, stack: StackConfig, topic: str, alerts_topic: str, workdir: Path) -> None:
        self.stack, self.topic, self.alerts_topic, self.workdir = (
            stack,
            topic,
            alerts_topic,
            workdir,
        )
        self.checkpoint = str(workdir / "checkpoint")
        self.ledgers: list[dict] = []
        self.retired: Counter[str] = Counter()  # valid readings retention deliberately dropped
        self.job = harness.SupervisedJob(
            StreamJob(
                stack, topic, self.checkpoint, workdir / "job.log",
                HEARTBEAT_TRIGGER_INTERVAL="1 second",
                HEARTBEAT_ALERT_SUSTAIN_SECONDS=str(SUSTAIN_SECONDS),
                KAFKA_ALERTS_TOPIC=alerts_topic,  # created only by the alert test
                # No silent-device events: an earlier run's customers fall silent 5 minutes
                # after its producer stops, and their event would meet the missing alerts
                # topic (the job stops on an unpublishable alert) before the alert test.
                HEARTBEAT_SILENT_AFTER_SECONDS=str(24 * 3600),
                HEARTBEAT_RETENTION_INTERVAL_SECONDS=str(RETENTION_INTERVAL),
            )
        )  # fmt: skip
        self.producer: harness.SteadyProducer | None = None

    def start_producer(self, name: str) -> harness.SteadyProducer:
        # No abnormal episodes from the simulator: only the alert test's patient opens one.
        # Customer ids unique to this run: rollups of earlier runs share the table.
        if self.producer is not None:  # a failed test's: it must not outlive its test
            self.producer.kill()
        prefix = f"{name}-{self.topic.rsplit('-', 1)[-1]}-"
        self.producer = harness.SteadyProducer(
            self.stack, self.topic, self.workdir, prefix=prefix, rate=RATE,
            seed=len(self.ledgers) + 1, abnormal_rate=0.0,
        )  # fmt: skip
        return self.producer

    def running_normally(self, timeout: float = CATCH_UP) -> None:
        """Wait for the pipeline to keep up with the load."""
        wait_for(lambda: (harness.stored(self.stack, self.topic) or 0) > 0, timeout,
                 "the job's first batch")  # fmt: skip
        harness.wait_caught_up(self.stack, self.topic, 15 * RATE, timeout, "a healthy lag")

    def healthy_lag(self) -> float:
        """Once it keeps up, the pipeline's lag under this load (a few seconds of samples): what
        a recovery is measured back to. Only the tests that measure a recovery need it."""
        self.running_normally()
        return harness.baseline_lag(self.stack, self.topic)

    def topic_end(self) -> int:
        end = harness.topic_end(self.stack, self.topic)
        assert end is not None, "the broker is not answering"
        return end

    def recover(self, baseline: float, what: str, must_store: int) -> float:
        """Seconds until the lag is normal again and everything in the topic when the fault
        began (`must_store` messages) is stored."""
        threshold = harness.normal_lag(baseline, RATE)
        return harness.wait_caught_up(self.stack, self.topic, threshold, CATCH_UP, what,
                                      must_store=must_store)  # fmt: skip

    def finish(self, test: str, **values: object) -> None:
        """Stop the producer (SIGTERM), check the ledger of every run so far, record figures."""
        assert self.producer is not None
        ledger = self.producer.stop()
        self.producer = None
        self.ledgers.append(ledger)
        assert ledger["failed"] == 0 and ledger["unconfirmed"] == 0, ledger["errors"]
        expected = Expected.from_ledgers(self.ledgers).retire(self.retired)
        report, drained = wait_until_balanced(self.stack, self.topic, expected, timeout=CATCH_UP)
        figures.record(test, ledger=report.summary(), drained_after_stop_s=round(drained, 1),
                       job_starts=self.job.starts, **values)  # fmt: skip
        assert report.ok, report.explain()


@pytest.fixture(scope="module")
def rig(stack, tmp_path_factory) -> Iterator[Rig]:
    topic = f"test-faults-{uuid.uuid4().hex[:8]}"
    alerts_topic = f"{topic}-alerts"
    kafka.create_topic(stack.kafka_bootstrap_servers, topic)
    rig = Rig(stack, topic, alerts_topic, tmp_path_factory.mktemp("faults"))
    rig.job.start()
    try:
        yield rig
    finally:
        if rig.producer is not None:
            rig.producer.kill()
        rig.job.stop()
        kafka.delete_topics(stack.kafka_bootstrap_servers, topic, alerts_topic)


def test_producer_sigterm_delivers_everything_it_reported(rig):
    rig.start_producer("sigterm")
    rig.running_normally()
    stopped = time.monotonic()
    rig.finish("producer SIGTERM")
    figures.record("producer SIGTERM", stop_to_balanced_s=round(time.monotonic() - stopped, 1))


def test_kafka_broker_sigkilled_and_restarted(rig, world):
    producer = rig.start_producer("kafka")
    baseline = rig.healthy_lag()
    sent_before = producer.sent()
    end_at_fault = rig.topic_end()
    world.kill_kafka()
    down_at = time.monotonic()
    world.start_kafka()  # as supervisord would: same port, same data
    back_at = time.monotonic()
    # The producer's first acknowledgement after the broker's return (its ledger is refreshed
    # every second): kafka-python's own reconnect backoff, doubling up to 30 s, had it wait 11 s.
    sent_at_return = producer.sent()
    wait_for(lambda: producer.sent() > sent_at_return, 120, "the producer to resume", poll=0.1)
    resumed = time.monotonic() - back_at
    rig.recover(baseline, "catch-up after the broker restarted", end_at_fault)
    recovery = time.monotonic() - down_at  # measured from the kill
    wait_for(lambda: producer.sent() > sent_before + RATE, 120, "the producer to go on")
    rig.finish("Kafka SIGKILL", broker_back_s=round(back_at - down_at, 1),
               recovery_s=round(recovery, 1), producer_resumed_s=round(resumed, 1),
               baseline_lag=baseline)  # fmt: skip


def test_postgres_stopped_for_30_seconds(rig, world):
    rig.start_producer("pgdown")
    baseline = rig.healthy_lag()
    end_at_fault = rig.topic_end()
    starts_before = rig.job.starts
    stop_asked = time.monotonic()
    world.stop_postgres()
    shutdown = time.monotonic() - stop_asked
    try:
        # The outage is 30 s from the stop request: PostgreSQL refuses connections from then on,
        # and its shutdown alone took 35 s on a loaded CI machine.
        time.sleep(max(0.0, 30 - shutdown))
    finally:
        world.start_postgres()
    # Measured from PostgreSQL's return.
    recovery = rig.recover(baseline, "catch-up after PostgreSQL came back", end_at_fault)
    rig.finish("PostgreSQL down 30 s", recovery_s=round(recovery, 1), baseline_lag=baseline,
               shutdown_s=round(shutdown, 1))  # fmt: skip
    # The batch caught by the outage was retried in place (the sink retries for
    # HEARTBEAT_SINK_RETRY_SECONDS, 60 s by default): the job never exited and was not restarted.
    assert rig.job.starts == starts_before, (
        f"the job was restarted {rig.job.starts - starts_before} time(s) during a 30 s outage"
    )


def test_postgres_crash_while_spark_is_a_batch_ahead(rig, world):
    """The overlapped commit's crash window: Spark has recorded a batch as done while its
    transaction is still open (held here by a lock), and PostgreSQL crashes; crash recovery
    empties the UNLOGGED stage. The commit must not then record the batch empty: it finds the
    stage's token gone, the job stops, and its next start has Spark run the batch again from
    Kafka. The ledger proves that every message landed once."""
    rig.start_producer("pgcrash")
    baseline = rig.healthy_lag()
    starts_before = rig.job.starts
    sink_id = sink_id_for(rig.checkpoint)
    with BatchHold(rig.stack) as hold:
        _, ahead = hold.wait_until_spark_is_ahead(rig.checkpoint, sink_id, CATCH_UP)
        end_at_fault = rig.topic_end()
        world.crash_postgres()
    world.start_postgres()
    wait_for(lambda: rig.job.starts > starts_before, CATCH_UP,
             "the job to stop on the emptied stage and start again")  # fmt: skip
    recovery = rig.recover(baseline, "catch-up after PostgreSQL crashed", end_at_fault)
    rig.finish("PostgreSQL crash, Spark a batch ahead", recovery_s=round(recovery, 1),
               baseline_lag=baseline)  # fmt: skip
    log = (rig.workdir / "job.log").read_text(errors="replace")
    assert "the stage was emptied" in log, rig.job.job.log_tail(80)
    assert f"Spark runs batch {ahead} again" in log, rig.job.job.log_tail(80)


def test_job_sigkilled_five_times_at_random_points(rig):
    """Kills 1, 3, 5 at random moments; 2 and 4 just after a commit (the replay window)."""
    rig.start_producer("sigkill")
    baseline = rig.healthy_lag()
    chooser = random.Random()
    recoveries = []
    for kill in range(5):
        if kill % 2:  # kills 2 and 4: right after a batch commits, before Spark records it
            harness.wait_for_a_commit(rig.stack)
        else:
            time.sleep(chooser.uniform(0.2, 4.0))  # a random point in the job's work
        starts, end_at_kill = rig.job.starts, rig.topic_end()
        killed_at = time.monotonic()
        rig.job.kill()
        wait_for(lambda s=starts: rig.job.starts > s, 30, f"restart after kill {kill + 1}")
        rig.recover(baseline, f"catch-up after kill {kill + 1}", end_at_kill)
        recoveries.append(round(time.monotonic() - killed_at, 1))
    rig.finish("job SIGKILL x5", recovery_s=recoveries, baseline_lag=baseline)


def _patient_readings(patient: str) -> list[tuple[bytes, bytes]]:
    """20 s normal, 40 s at 150 bpm, 20 s normal: one tachycardia episode once sustained 10 s."""
    t0 = datetime.now(UTC) - timedelta(seconds=90)
    rates = [75] * 20 + [150] * 40 + [75] * 20
    return [encode_reading(patient, t0 + timedelta(seconds=i), bpm) for i, bpm in enumerate(rates)]


def _episode_events(stack: StackConfig, sink_id: str, patient: str) -> tuple | None:
    """The patient's episode (kind, start) and its outbox: (events recorded, events published)."""
    rows = superuser_query(
        stack,
        "SELECT a.kind, a.started_at, count(e.id), count(e.published_at)"
        " FROM heart_rate_alerts a LEFT JOIN alert_events e ON e.alert_id = a.alert_id"
        " WHERE a.sink_id = %s AND a.customer_id = %s GROUP BY a.kind, a.started_at",
        sink_id,
        patient,
    )
    return rows[0] if rows else None


def test_crash_between_commit_and_alert_publication(rig):
    """The episode is committed with its events, their publication pending (the alerts topic
    does not exist yet, so the send waits for metadata); the job is SIGKILLed there. After the
    restart, with the topic created, its open and resolved events are published, with its
    stable id (at least once: consumers deduplicate by event_id)."""
    rig.start_producer("alerts")
    rig.running_normally()
    patient = f"alerts-patient-{uuid.uuid4().hex[:6]}"
    messages = _patient_readings(patient)
    kafka.publish(rig.stack.kafka_bootstrap_servers, rig.topic, messages)
    rig.ledgers.append({"sent": len(messages), "failed": 0, "outcomes": {"valid": len(messages)},
                        "customers": {patient: {"valid": len(messages)}}})  # fmt: skip

    sink_id = sink_id_for(rig.checkpoint)
    wait_for(lambda: (_episode_events(rig.stack, sink_id, patient) or (0, 0, 0))[2] >= 1,
             CATCH_UP, "the episode and its open event to be committed", poll=0.1)  # fmt: skip
    kind, started_at, _, published = _episode_events(rig.stack, sink_id, patient)
    assert published == 0  # committed, not yet published: the crash point
    starts = rig.job.starts
    rig.job.kill()
    wait_for(lambda: rig.job.starts > starts, 30, "the job's restart")

    kafka.create_topic(rig.stack.kafka_bootstrap_servers, rig.alerts_topic, partitions=1)
    created = time.monotonic()
    wait_for(lambda: _episode_events(rig.stack, sink_id, patient)[2:] == (2, 2), CATCH_UP,
             "the restarted job to publish the pending events")  # fmt: skip
    published_after = time.monotonic() - created

    events = read_to_end(rig.stack.kafka_bootstrap_servers, rig.alerts_topic)
    mine = deduplicated([e for e in events if e["customer_id"] == patient])
    assert [(e["kind"], e["status"], e["alert_id"]) for e in mine] == [
        (kind, "open", alert_id(patient, kind, started_at)),
        (kind, "resolved", alert_id(patient, kind, started_at)),
    ], events
    rig.finish(
        "crash between commit and alert publication",
        alert_published_after_restart_s=round(published_after, 1),
        alert_events=len(mine),
    )


def test_retention_drops_old_days_under_load(rig):
    """A device back after 40 days sends its old readings while the live load goes on: their
    batches make partitions for those days, the rollups count them, and the job's retention
    timer then drops those days whole. The ledger stays exact with exactly those readings
    retired; the timer also makes the next days' partitions ahead."""
    rig.start_producer("retention")
    rig.running_normally()
    ahead = datetime.now(UTC).date() + timedelta(days=partitions.DAYS_AHEAD)
    ahead_partition = f"heart_rate_readings_p{ahead:%Y%m%d}"
    drop = sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(ahead_partition))
    superuser_query(rig.stack, drop)  # a future day: empty

    device = f"retention-device-{uuid.uuid4().hex[:6]}"
    start = datetime.now(UTC) - timedelta(days=41)
    old = [start + timedelta(hours=i) for i in range(36)]  # spans two or three UTC days
    old_days = {f"public.heart_rate_readings_p{at:%Y%m%d}" for at in old}
    old_readings = [encode_reading(device, at, 60 + i) for i, at in enumerate(old)]
    kafka.publish(rig.stack.kafka_bootstrap_servers, rig.topic, old_readings)
    rig.ledgers.append({"sent": len(old), "failed": 0, "outcomes": {"valid": len(old)},
                        "customers": {device: {"valid": len(old)}}})  # fmt: skip

    def counted_then_retired() -> bool:
        rollups = superuser_query(
            rig.stack,
            "SELECT coalesce(sum(readings), 0), coalesce(sum(sum_bpm), 0) FROM heart_rate_minute"
            " WHERE customer_id = %s",
            device,
        )
        raw = superuser_query(
            rig.stack, "SELECT count(*) FROM heart_rate_readings WHERE customer_id = %s", device
        )
        return rollups == [(len(old), sum(60 + i for i in range(len(old))))] and raw == [(0,)]

    wait_for(counted_then_retired, CATCH_UP, "the old readings to be counted, then retired")
    rig.retired[device] += len(old)
    remaining = superuser_query(
        rig.stack,
        "SELECT partition::text FROM heart_rate_readings_partitions"
        " WHERE partition::text = ANY(%s)",
        [name.removeprefix("public.") for name in old_days],
    )
    assert remaining == []

    def logged() -> bool:
        """The job's log reaches the file through spark-submit's JVM, which copies the Python
        driver's output a moment after the drop is already visible in the database."""
        log = (rig.workdir / "job.log").read_text(errors="replace")
        return all(name in log for name in old_days)

    wait_for(logged, 30, "the retention timer to log dropping those days")
    wait_for(
        lambda: superuser_query(rig.stack, "SELECT to_regclass(%s)", ahead_partition)[0][0],
        3 * RETENTION_INTERVAL + 60, "the retention timer to make the next days' partition",
    )  # fmt: skip
    rig.finish("retention under load", retired=len(old), old_partitions=len(old_days))
