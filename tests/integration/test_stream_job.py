"""End to end on the real stack: Kafka -> spark-submit job -> PostgreSQL, exactly once."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from kafka import KafkaProducer

from .stream_job_runner import StreamJob, wait_for

pytestmark = pytest.mark.integration


def _reading(customer: str, moment: datetime, heart_rate: object) -> bytes:
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return json.dumps(
        {"customer_id": customer, "timestamp": stamp, "heart_rate": heart_rate}
    ).encode()


def known_mix(count: int, start: datetime) -> list[tuple[bytes | None, str]]:
    """`count` messages cycling through every outcome, each paired with its expected outcome."""
    later = (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    templates: list[tuple[object, str]] = [
        (lambda i, t: _reading(f"C{i % 7}", t, 40 + i % 141), "valid"),
        (lambda i, t: _reading(f"C{i % 7}", t, 181 + i % 50), "out_of_range"),
        (lambda i, t: _reading(f"C{i % 7}", t, 39 - i % 39), "out_of_range"),
        (lambda i, t: b'{"customer_id": "C1", "heart_rate": 70', "malformed_json"),
        (lambda i, t: None, "malformed_json"),
        (
            lambda i, t: json.dumps({"customer_id": "C1", "heart_rate": 70}).encode(),
            "missing_field",
        ),
        (lambda i, t: _reading("C1", t, "70"), "invalid_type"),
        (lambda i, t: _reading("C1", t, 70.5), "invalid_type"),
        (
            lambda i, t: json.dumps(
                {"customer_id": "C1", "timestamp": later, "heart_rate": 70}
            ).encode(),
            "invalid_timestamp",
        ),
        (lambda i, t: _reading('Zoë "O\'Brien" 客户', t, 72), "valid"),
    ]
    messages = []
    for i in range(count):
        build, outcome = templates[i % len(templates)]
        messages.append((build(i, start + timedelta(milliseconds=i)), outcome))
    return messages


def publish(stack, topic: str, values: list[bytes | None]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap_servers,
        acks="all",
        linger_ms=20,
        batch_size=256 * 1024,
    )
    for i, value in enumerate(values):
        producer.send(topic, key=f"K{i % 11}".encode(), value=value)
    producer.flush()
    producer.close()


class Tables:
    """What the job wrote for one topic, read as the superuser."""

    def __init__(self, stack, topic: str) -> None:
        self.dsn = stack.dsn(user=stack.pg_superuser, password=stack.pg_superuser_password)
        self.topic = topic

    def _query(self, sql: str, *params: object) -> list[tuple]:
        with psycopg2.connect(self.dsn) as conn, conn.cursor() as cur:
            cur.execute(sql, (self.topic, *params))
            return cur.fetchall()

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


def test_known_mix_lands_exactly_with_reasons(stack, fresh_topic, job_factory):
    messages = known_mix(1000, datetime.now(UTC) - timedelta(minutes=30))
    publish(stack, fresh_topic, [value for value, _ in messages])
    tables = Tables(stack, fresh_topic)

    job = job_factory()
    job.start()
    wait_for(lambda: tables.total() >= len(messages), 180, "the job to drain the topic")

    assert tables.outcomes() == Counter(outcome for _, outcome in messages)
    rows = tables._query(
        "SELECT customer_id, heart_rate FROM heart_rate_readings WHERE kafka_topic = %s"
        " AND customer_id LIKE 'Zo%%'"
    )
    assert rows and all(r == ('Zoë "O\'Brien" 客户', 72) for r in rows)
    raw = tables._query(
        "SELECT raw_value, detail FROM rejected_readings WHERE kafka_topic = %s"
        " AND reason = 'invalid_type' AND raw_value LIKE '%%\"70\"%%' LIMIT 1"
    )
    assert json.loads(raw[0][0])["heart_rate"] == "70"
    assert raw[0][1] == "heart_rate must be a JSON integer, got STRING"


def test_sigkill_mid_write_then_restart_loses_and_duplicates_nothing(
    stack, fresh_topic, job_factory, tmp_path
):
    first = known_mix(60_000, datetime.now(UTC) - timedelta(minutes=30))
    publish(stack, fresh_topic, [value for value, _ in first])
    tables = Tables(stack, fresh_topic)
    sink_id = hashlib.sha256(str(tmp_path / "checkpoint").encode()).hexdigest()[:16]

    job = job_factory(HEARTBEAT_MAX_OFFSETS_PER_TRIGGER="6000")
    job.start()
    # Kill while a batch sits in the staging table: written by JDBC, not yet moved.
    wait_for(lambda: tables.staged(sink_id) > 0, 180, "a batch to be staged", poll=0.02)
    job.kill()
    at_kill = tables.total()
    assert at_kill < len(first), "the job finished before it could be killed mid-write"

    second = known_mix(5_000, datetime.now(UTC) - timedelta(minutes=10))
    publish(stack, fresh_topic, [value for value, _ in second])
    job.start()
    expected = len(first) + len(second)
    wait_for(lambda: tables.total() >= expected, 300, "the restarted job to catch up")

    assert tables.outcomes() == Counter(outcome for _, outcome in first + second)
    assert tables.distinct_offsets() == expected
    assert tables.staged(sink_id) == 0


def test_postgres_unreachable_fails_the_job_without_losing_the_batch(
    stack, fresh_topic, job_factory
):
    messages = known_mix(200, datetime.now(UTC) - timedelta(minutes=5))
    publish(stack, fresh_topic, [value for value, _ in messages])
    tables = Tables(stack, fresh_topic)

    job = job_factory()
    job.start(PGPORT="1", HEARTBEAT_SINK_RETRY_SECONDS="2")  # nothing listens on port 1
    assert job.wait_exit(timeout=180) != 0, job.log_tail()
    assert tables.total() == 0

    job.start()  # the database is back: the same batch is replayed and lands
    wait_for(lambda: tables.total() >= len(messages), 180, "the replayed batch")
    assert tables.outcomes() == Counter(outcome for _, outcome in messages)
