"""Rollups, alert episodes and pipeline metrics on the real stack, through a crash."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from heartbeat_contract import encode_reading
from heartbeat_stream.config import sink_id_for
from tests.support.rollups import rollup_mismatches
from tests.support.sink_activity import kill_inside_the_batch_transaction
from tests.support.stream_job import StreamJob, wait_for

pytestmark = pytest.mark.integration

NORMAL, HIGH = 75, 150
ZERO = timedelta()


@pytest.fixture
def alerts_topic(stack):
    name = f"test-alerts-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap_servers)
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    yield name
    admin.delete_topics([name])
    admin.close()


def scripted_readings(prefix: str, t0: datetime) -> list[tuple[bytes, bytes]]:
    """Patient P: 1 min normal, 3 min at 150 (one 165 peak), 1 min normal. Two calm others, and
    a device whose clock runs 4.5 minutes fast (it once pushed a watermark past everyone else).

    (key, value) pairs in the order the devices send them.
    """
    rates = [NORMAL] * 60 + [HIGH] * 90 + [165] + [HIGH] * 89 + [NORMAL] * 60
    sent = [(t0 + timedelta(seconds=i), f"{prefix}-P", bpm) for i, bpm in enumerate(rates)]
    for other in ("A", "B"):
        sent += [(t0 + timedelta(seconds=i), f"{prefix}-{other}", 60 + i % 30) for i in range(300)]
    fast = timedelta(minutes=4, seconds=30)
    sent += [(t0 + timedelta(seconds=i), f"{prefix}-FAST", 80) for i in range(0, 300, 5)]
    sent.sort()
    return [
        encode_reading(customer, moment + (fast if customer.endswith("FAST") else ZERO), bpm)
        for moment, customer, bpm in sent
    ]


def query(stack, sql: str, *params: object) -> list[tuple]:
    dsn = stack.admin_dsn
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def test_episode_rollups_and_metrics_survive_a_crash(stack, fresh_topic, alerts_topic, tmp_path):
    prefix = fresh_topic
    t0 = (datetime.now(UTC) - timedelta(minutes=20)).replace(second=0, microsecond=0)
    messages = scripted_readings(prefix, t0)
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap_servers, acks="all")
    for key, value in messages:
        producer.send(fresh_topic, key=key, value=value)
    producer.flush()
    producer.close()

    checkpoint = str(tmp_path / "checkpoint")
    sink_id = sink_id_for(checkpoint)
    job = StreamJob(
        stack,
        fresh_topic,
        checkpoint,
        tmp_path / "job.log",
        KAFKA_ALERTS_TOPIC=alerts_topic,
        HEARTBEAT_MAX_OFFSETS_PER_TRIGGER="120",
    )  # many batches: the episode spans them
    readings = lambda: query(  # noqa: E731
        stack, "SELECT count(*) FROM heart_rate_readings WHERE kafka_topic = %s", fresh_topic
    )[0][0]
    try:
        job.start()
        wait_for(lambda: readings() >= 300, 180, "some batches to commit", poll=0.05)
        # Killed inside a batch transaction that has moved readings and merged rollups, held
        # there by a lock this test takes (tests/support/sink_activity.py).
        committed = readings()
        kill_inside_the_batch_transaction(stack, job)
        assert readings() == committed, "the killed batch transaction committed readings"
        assert readings() < len(messages), "the job drained everything before the crash"
        job.start()
        wait_for(lambda: readings() == len(messages), 240, "the restarted job to catch up")
        # Rollups commit with their readings: equal to SQL over them, no waiting.
        dsn = stack.admin_dsn
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            assert rollup_mismatches(cur, fresh_topic) == []
        episodes = query(
            stack,
            "SELECT customer_id, kind, started_at, ended_at, extreme_bpm, readings"
            " FROM heart_rate_alerts WHERE sink_id = %s ORDER BY id",
            sink_id,
        )
        assert episodes == [
            (
                f"{prefix}-P",
                "tachycardia",
                t0 + timedelta(seconds=60),
                t0 + timedelta(seconds=240),
                165,
                180,
            )
        ]

        consumer = KafkaConsumer(
            alerts_topic,
            bootstrap_servers=stack.kafka_bootstrap_servers,
            auto_offset_reset="earliest",
            consumer_timeout_ms=10_000,
        )
        records = list(consumer)
        consumer.close()
        published = [json.loads(record.value) for record in records]
        assert [(p["customer_id"], p["kind"]) for p in published] == [
            (f"{prefix}-P", "tachycardia")
        ]
        # Keyed by customer id, like the readings: one customer's alerts stay in order.
        assert [record.key for record in records] == [f"{prefix}-P".encode()]

        # This query's own progress rows (its id is in the checkpoint): every message was read
        # by one of its batches; a batch the crash interrupted is read, and counted, again.
        query_id = json.loads(Path(checkpoint, "readings", "metadata").read_text())["id"]
        ((batches, rows_read),) = query(
            stack,
            "SELECT count(*), coalesce(sum(input_rows), 0) FROM pipeline_metrics"
            " WHERE query_id = %s",
            query_id,
        )
        assert batches >= len(messages) // 120 and rows_read >= len(messages)
    finally:
        job.stop()
        query(stack, "SELECT 1")  # connection sanity for cleanup below
        dsn = stack.admin_dsn
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM heart_rate_minute WHERE customer_id LIKE %s", (f"{prefix}-%",))
