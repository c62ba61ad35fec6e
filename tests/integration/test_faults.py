"""Faults under steady producer load, each followed by the ledger check and the time to recover.

Every test runs the real producer (100 readings/s, 5% malformed) and the real job, restarted by a
supervisor-like loop whenever it exits; then injects one fault into this checkout's own stack,
measures how long the lag takes to return to normal, stops the producer with SIGTERM and checks
the ledger: every reading the producer reported as sent is stored exactly once, valid or
quarantined with the expected reason, and the minute rollups equal SQL over the stored rows.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from heartbeat_ops.stream_job import StreamJob, wait_for
from tests.support import figures, harness
from tests.support.ledger import Expected, wait_until_balanced

pytestmark = pytest.mark.integration

RATE = 100.0
CATCH_UP = 240.0  # seconds a recovery may take at most on the shared 2-core machine


@dataclass
class Rig:
    stack: object
    topic: str
    job: harness.SupervisedJob
    producer: harness.SteadyProducer

    def running_normally(self, timeout: float = 240.0) -> float:
        """Wait for the pipeline to keep up with the load; returns its healthy lag."""
        wait_for(lambda: (harness.stored(self.stack, self.topic) or 0) > 0, timeout,
                 "the job's first batch")  # fmt: skip
        harness.wait_caught_up(self.stack, self.topic, 3 * RATE, timeout, "a healthy lag")
        return harness.baseline_lag(self.stack, self.topic)

    def recover(self, baseline: float, what: str) -> float:
        threshold = harness.normal_lag(baseline, RATE)
        return harness.wait_caught_up(self.stack, self.topic, threshold, CATCH_UP, what)

    def finish(self, test: str, **figures_: object) -> None:
        """Stop the producer (SIGTERM) and check the ledger; record the figures."""
        ledger = self.producer.stop()
        assert ledger["failed"] == 0 and ledger["unconfirmed"] == 0, ledger["errors"]
        expected = Expected.from_ledgers([ledger])
        report, drained = wait_until_balanced(self.stack, self.topic, expected, timeout=CATCH_UP)
        figures.record(test, ledger=report.summary(), drained_after_stop_s=round(drained, 1),
                       job_starts=self.job.starts, **figures_)  # fmt: skip
        assert report.ok, report.explain()


@pytest.fixture
def rig(stack, fresh_topic, tmp_path) -> Iterator[Rig]:
    job = harness.SupervisedJob(
        StreamJob(
            stack, fresh_topic, str(tmp_path / "checkpoint"), tmp_path / "job.log",
            HEARTBEAT_TRIGGER_INTERVAL="1 second", HEARTBEAT_ROLLUP_TRIGGER_INTERVAL="5 seconds",
        )
    )  # fmt: skip
    producer = harness.SteadyProducer(stack, fresh_topic, tmp_path, prefix=fresh_topic, rate=RATE)
    job.start()
    rig = Rig(stack, fresh_topic, job, producer)
    try:
        yield rig
    finally:
        producer.kill()
        job.stop()


def test_job_sigkilled_five_times_at_random_points(rig):
    baseline = rig.running_normally()
    chooser = random.Random()
    recoveries = []
    for kill in range(5):
        time.sleep(chooser.uniform(0.2, 4.0))  # a random point in the job's work, not a wait
        starts = rig.job.starts
        rig.job.kill()
        wait_for(lambda s=starts: rig.job.starts > s, 30, f"restart after kill {kill + 1}")
        recoveries.append(round(rig.recover(baseline, f"catch-up after kill {kill + 1}"), 1))
    rig.finish("job SIGKILL x5", recovery_s=recoveries, baseline_lag=baseline)


def test_postgres_stopped_for_30_seconds(rig):
    baseline = rig.running_normally()
    harness.stop_service("postgres")
    try:
        time.sleep(30)  # the outage itself
    finally:
        harness.start_service("postgres")
    recovery = rig.recover(baseline, "catch-up after PostgreSQL came back")
    rig.finish("PostgreSQL down 30 s", recovery_s=round(recovery, 1), baseline_lag=baseline)


def test_kafka_broker_sigkilled_and_restarted(rig):
    baseline = rig.running_normally()
    sent_before = rig.producer.sent()
    killed = harness.sigkill_service("kafka")
    down_at = time.monotonic()
    harness.wait_service_back("kafka", killed)
    broker_back = time.monotonic() - down_at
    recovery = rig.recover(baseline, "catch-up after the broker restarted")
    wait_for(lambda: rig.producer.sent() > sent_before + RATE, 120, "the producer to resume")
    rig.finish("Kafka SIGKILL", broker_back_s=round(broker_back, 1),
               recovery_s=round(recovery, 1), baseline_lag=baseline)  # fmt: skip


def test_producer_sigterm_delivers_everything_it_reported(rig):
    rig.running_normally()
    started = time.monotonic()
    rig.finish("producer SIGTERM", recovery_s=None)
    figures.record("producer SIGTERM", stop_to_balanced_s=round(time.monotonic() - started, 1))
