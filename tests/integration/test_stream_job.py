"""End to end on the real stack: Kafka -> spark-submit job -> PostgreSQL, exactly once."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from heartbeat_producer.config import SimulationConfig
from heartbeat_producer.publisher import send_all
from heartbeat_producer.simulator import Simulator
from heartbeat_stream.config import sink_id_for
from tests.support import kafka
from tests.support.db import superuser_cursor, superuser_query
from tests.support.known_mix import mixed_messages
from tests.support.rollups import rollup_mismatches
from tests.support.sink_activity import (
    kill_inside_the_batch_transaction,
    kill_while_spark_is_a_batch_ahead,
)
from tests.support.stream_job import StreamJob, wait_for

pytestmark = pytest.mark.integration

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def publish(stack, topic: str, values: list[bytes | None]) -> None:
    messages = [(f"K{i % 11}".encode(), value) for i, value in enumerate(values)]
    kafka.publish(stack.kafka_bootstrap_servers, topic, messages, linger_ms=20,
                  batch_size=256 * 1024)  # fmt: skip


class Tables:
    """What the job wrote for one topic, read as the superuser."""

    def __init__(self, stack, topic: str) -> None:
        self.stack = stack
        self.topic = topic

    def _query(self, sql: str, *params: object) -> list[tuple]:
        return superuser_query(self.stack, sql, self.topic, *params)

    def outcomes(self) -> Counter:
        rows = self._query(
            "SELECT 'valid', count(*) FROM heart_rate_readings WHERE kafka_topic = %s "
            "UNION ALL SELECT reason, count(*) FROM rejected_readings WHERE kafka_topic = %s "
            "GROUP BY reason",
            self.topic,
        )
        return Counter({reason: n for reason, n in rows if n})

    def total(self) -> int:
        return sum(self.outcomes().values())

    def staged(self, sink_id: str) -> int:
        return self._query(
            "SELECT count(*) FROM stage_messages WHERE kafka_topic = %s AND sink_id = %s", sink_id
        )[0][0]

    def rollup_mismatches(self) -> list[tuple]:
        with superuser_cursor(self.stack) as cur:
            return rollup_mismatches(cur, self.topic)

    def distinct_offsets(self) -> int:
        return self._query(
            "SELECT count(*) FROM (SELECT kafka_partition, kafka_offset FROM heart_rate_readings"
            " WHERE kafka_topic = %s UNION SELECT kafka_partition, kafka_offset"
            " FROM rejected_readings WHERE kafka_topic = %s) o",
            self.topic,
        )[0][0]


@pytest.fixture
def job_factory(stack, fresh_topic, tmp_path):
    jobs: list[StreamJob] = []

    def make(**overrides: str) -> StreamJob:
        job = StreamJob(
            stack,
            fresh_topic,
            str(tmp_path / "checkpoint"),
            tmp_path / f"job-{len(jobs)}.log",
            **overrides,
        )
        jobs.append(job)
        return job

    yield make
    for job in jobs:
        job.stop()


@pytest.mark.parametrize(
    "moment", ["staged", "in the batch transaction", "recorded by Spark, not committed"]
)
def test_sigkill_mid_write_then_restart_loses_and_duplicates_nothing(
    stack, fresh_topic, job_factory, tmp_path, moment
):
    first = mixed_messages(30_000, seed=2)  # 5 batches of 6,000
    publish(stack, fresh_topic, [value for value, _ in first])
    tables = Tables(stack, fresh_topic)
    sink_id = sink_id_for(str(tmp_path / "checkpoint"))

    job = job_factory(HEARTBEAT_MAX_OFFSETS_PER_TRIGGER="6000")
    job.start()
    if moment == "staged":  # written by JDBC, not yet moved (or being moved)
        wait_for(lambda: tables.staged(sink_id) > 0, 180, "a batch to be staged", poll=0.02)
        job.kill()
    if moment == "in the batch transaction":  # rows moved, uncommitted: held by a lock, killed
        wait_for(lambda: tables.total() > 0, 180, "the first batch to commit", poll=0.05)
        committed = tables.total()
        kill_inside_the_batch_transaction(stack, job)
        assert tables.total() == committed, "the killed batch transaction committed rows"
    if moment == "recorded by Spark, not committed":
        wait_for(lambda: tables.total() > 0, 180, "the first batch to commit", poll=0.05)
        ahead = kill_while_spark_is_a_batch_ahead(stack, job, tmp_path / "checkpoint", sink_id)
    at_kill = tables.total()
    assert at_kill < len(first), "the job finished before it could be killed mid-write"

    second = mixed_messages(5_000, seed=3)
    publish(stack, fresh_topic, [value for value, _ in second])
    job.start()
    expected = len(first) + len(second)
    wait_for(lambda: tables.total() >= expected, 300, "the restarted job to catch up")

    assert tables.outcomes() == Counter(outcome for _, outcome in first + second)
    assert tables.distinct_offsets() == expected
    assert tables.staged(sink_id) == 0
    assert tables.rollup_mismatches() == []
    # Both starts wrote the local checkpoint through the FileSystem API (checkpoint_files.py).
    log = job.log_path.read_text(errors="replace")
    assert log.count("(written by FileSystemBasedCheckpointFileManager)") == 2, job.log_tail()
    if moment == "recorded by Spark, not committed":  # the restart ran that batch again
        assert f"Spark runs batch {ahead} again" in log, job.log_tail()


def test_postgres_unreachable_fails_the_job_without_losing_the_batch(
    stack, fresh_topic, job_factory
):
    messages = mixed_messages(200, seed=4)
    publish(stack, fresh_topic, [value for value, _ in messages])
    tables = Tables(stack, fresh_topic)

    job = job_factory()
    job.start(HEARTBEAT_PG_PORT="1", HEARTBEAT_SINK_RETRY_SECONDS="2")  # nothing listens on port 1
    assert job.wait_exit(timeout=180) != 0, job.log_tail()
    # A refused connection is transient: retried in place until the deadline, then given up
    # (not failed at once as if it were a data error).
    log = job.log_path.read_text(errors="replace")
    assert "(attempt 1, transient)" in log and "giving up" in log, job.log_tail(60)
    assert tables.total() == 0

    job.start()  # the database is back: the same batch is replayed and lands
    wait_for(lambda: tables.total() >= len(messages), 180, "the replayed batch")
    assert tables.outcomes() == Counter(outcome for _, outcome in messages)


def test_the_original_systems_messages_land_with_their_utc_instants(
    stack, fresh_topic, job_factory
):
    """Integer ids 1..100 and Berlin wall-clock times without offset, with outliers."""
    config = SimulationConfig(
        customers=100, seed=9, invalid_rate=0.1, message_format="legacy",
        legacy_zone="Europe/Berlin",
    )  # fmt: skip
    start = datetime.now(UTC) - timedelta(minutes=3)
    messages = Simulator(config, start=start, rate=5).take(600)
    send_all(messages, bootstrap_servers=stack.kafka_bootstrap_servers, topic=fresh_topic)
    tables = Tables(stack, fresh_topic)

    job = job_factory(HEARTBEAT_NAIVE_TIMESTAMP_ZONE="Europe/Berlin")
    job.start()
    wait_for(lambda: tables.total() >= len(messages), 180, "the job to drain the topic")

    in_range = [m for m in messages if 40 <= m.heart_rate <= 180]
    assert tables.outcomes() == {
        "valid": len(in_range),
        "out_of_range": len(messages) - len(in_range),
    }
    stored = tables._query(
        'SELECT customer_id, "timestamp", heart_rate FROM heart_rate_readings'
        " WHERE kafka_topic = %s"
    )
    assert sorted(stored) == sorted(
        (m.customer_id, EPOCH + timedelta(milliseconds=m.timestamp_ms), m.heart_rate)
        for m in in_range
    )


def test_a_reset_checkpoint_stops_the_job_with_the_reason_and_drops_nothing(
    stack, fresh_topic, job_factory, tmp_path
):
    """sink_progress says batch N committed; the checkpoint directory is emptied (same path, so
    the same sink id) and Spark numbers batches from 0 again: the first batch holds messages
    never stored, and the job must stop with the reason rather than skip them as a replay."""
    first = mixed_messages(300, seed=5)
    publish(stack, fresh_topic, [value for value, _ in first])
    tables = Tables(stack, fresh_topic)
    checkpoint = tmp_path / "checkpoint"
    job = job_factory()
    job.start()
    wait_for(lambda: tables.total() >= len(first), 180, "the first run to drain the topic")
    job.stop()
    stored = tables.outcomes()

    shutil.rmtree(checkpoint)  # the reset: same directory, new query, batch ids from 0
    second = mixed_messages(100, seed=6)
    publish(stack, fresh_topic, [value for value, _ in second])
    job.start()
    code = job.wait_exit(timeout=240)
    assert code != 0, job.log_tail()
    log = job.log_path.read_text(errors="replace")
    assert "the checkpoint was reset" in log and "unseen messages" in log, job.log_tail(80)
    # Nothing was skipped as if it were a replay, and nothing was stored twice.
    assert tables.outcomes() == stored
    assert tables.distinct_offsets() == len(first)


def _jvm_started(job: StreamJob) -> bool:
    """submit.sh has exec'd down to the driver's JVM (same pid: bash -> nice -> spark -> java)."""
    cmdline = Path(f"/proc/{job.process.pid}/cmdline").read_bytes()
    return b"org.apache.spark.deploy.SparkSubmit" in cmdline


@pytest.mark.parametrize(
    ("setting", "niceness"), [({"SPARK_NICE": ""}, 10), ({"SPARK_NICE": "3"}, 3)]
)
def test_the_job_runs_at_a_lower_cpu_priority_than_the_dashboards(job_factory, setting, niceness):
    """The job yields the cores to Superset, Kafka and PostgreSQL when they are short
    (SPARK_NICE, default 10), and an operator can set it; the priority is the JVM's own.
    (Empty counts as unset: the default, not the tests' own 5 from conftest.)"""
    job = job_factory(**setting)
    job.start()
    wait_for(lambda: _jvm_started(job), 60, "spark-submit to start the driver's JVM")
    assert os.getpriority(os.PRIO_PROCESS, job.process.pid) == niceness
    job.kill()  # no need to let it start Spark: a start is ~8 CPU-s of a suite short of cores


def test_a_priority_out_of_range_stops_the_start_with_the_reason(job_factory):
    job = job_factory(SPARK_NICE="-5")  # raising priority above the dashboards is refused
    job.start()
    assert job.wait_exit(timeout=60) == 2
    assert "SPARK_NICE must be 0..19, not '-5'" in job.log_tail()
