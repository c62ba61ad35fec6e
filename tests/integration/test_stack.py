"""The native stack is real: a broker that round-trips messages, a PostgreSQL that stores rows,
and a Spark session whose Kafka connector reads the topic."""

from __future__ import annotations

import uuid

import psycopg2
import pytest

from heartbeat_contract.kafka_security import JOB, spark_kafka_options
from heartbeat_ops.config import ROOT
from tests.support.db import superuser_query
from tests.support.kafka import publish, read_to_end

pytestmark = pytest.mark.integration


def test_kafka_round_trip(stack, fresh_topic):
    sent = [f"message-{i}".encode() for i in range(50)]
    publish(stack.kafka_bootstrap_servers, fresh_topic, [(b"k", value) for value in sent])
    received = [record.value for record in read_to_end(stack.kafka_bootstrap_servers, fresh_topic)]
    assert received == sent  # one key, so one partition, so the order is kept


def test_postgres_write_and_read_as_app_role(app_db):
    topic = f"probe-{uuid.uuid4().hex}"
    with app_db.cursor() as cur:
        cur.execute(
            "INSERT INTO stage_messages (sink_id, batch_id, kafka_topic, kafka_partition,"
            " kafka_offset) VALUES (%s, %s, %s, %s, %s)",
            ("probe", -1, topic, 0, 7),
        )
        cur.execute("SELECT kafka_offset FROM stage_messages WHERE kafka_topic = %s", (topic,))
        assert cur.fetchall() == [(7,)]
    app_db.rollback()


def test_migrations_recorded(stack):
    rows = superuser_query(stack, "SELECT version FROM schema_migrations ORDER BY version")
    versions = [version for (version,) in rows]
    shipped = sorted(int(path.name.split("_")[0]) for path in (ROOT / "sql").glob("[0-9]*.sql"))
    assert versions == shipped


def test_app_role_cannot_change_schema(app_db):
    with app_db.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute("CREATE TABLE public.not_allowed (x int)")


def test_spark_reads_topic_as_batch(stack, fresh_topic, spark):
    messages = [(f"K{i % 3}".encode(), f"{i}".encode()) for i in range(30)]
    publish(stack.kafka_bootstrap_servers, fresh_topic, messages)

    frame = (
        spark.read.format("kafka")
        .options(**spark_kafka_options(stack, JOB))  # as the job reads
        .option("subscribe", fresh_topic)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
    )
    values = sorted(int(row.value.decode()) for row in frame.select("value").collect())
    assert values == list(range(30))
    assert {row.partition for row in frame.select("partition").collect()} <= {0, 1, 2}
