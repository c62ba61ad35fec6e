"""The stage's batch key comes from the connections that write it (sql/016): the sink's own JDBC
append, through Spark, lands every row under its batch; a connection that names no batch cannot
stage a row without a key; a sink id that would break the options is refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg2
import psycopg2.errors
import pytest

from heartbeat_stream.config import JobConfig
from heartbeat_stream.sinks.readings_sink import append_to_stage, stage_key_options
from heartbeat_stream.transforms.validation import PROCESSING_TIME, parse_messages
from tests.support.db import superuser_query

pytestmark = pytest.mark.integration

_KAFKA_ROW = (
    "topic string, partition int, offset long, timestamp timestamp, value binary,"
    f" {PROCESSING_TIME} timestamp"
)


def test_the_sinks_append_stages_every_row_under_its_batch(spark, stack, tmp_path):
    config = JobConfig.model_validate(stack.model_dump(by_alias=True)).model_copy(
        update={"checkpoint_dir": str(tmp_path / "checkpoint")}
    )
    topic = f"stage-key-{uuid.uuid4().hex[:8]}"
    at = datetime.now(UTC).replace(microsecond=0)
    values = [b'{"customer_id": "K1", "timestamp": "%s", "heart_rate": 72}' % at.isoformat()
              .encode(), b"{broken"]  # fmt: skip
    rows = [(topic, p, offset, at, value, at) for p in (0, 1) for offset, value in
            enumerate(values)]  # fmt: skip
    classified = parse_messages(spark.createDataFrame(rows, _KAFKA_ROW))

    append_to_stage(classified, config, batch_id=41, writers=2)
    append_to_stage(classified.where("kafka_partition = 1"), config, batch_id=42, writers=1)
    staged = superuser_query(
        stack,
        "SELECT sink_id, batch_id, kafka_partition, kafka_offset, reason FROM stage_messages"
        " WHERE kafka_topic = %s ORDER BY batch_id, kafka_partition, kafka_offset",
        topic,
    )
    superuser_query(stack, "DELETE FROM stage_messages WHERE kafka_topic = %s", topic)
    sink = config.sink_id
    assert staged == [
        (sink, 41, 0, 0, None), (sink, 41, 0, 1, "malformed_json"),
        (sink, 41, 1, 0, None), (sink, 41, 1, 1, "malformed_json"),
        (sink, 42, 1, 0, None), (sink, 42, 1, 1, "malformed_json"),
    ]  # fmt: skip


def test_a_connection_that_names_no_batch_cannot_stage_a_row_without_a_key(stack):
    conn = psycopg2.connect(stack.app_dsn)
    try:
        with pytest.raises(psycopg2.errors.UndefinedObject), conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO stage_messages (kafka_topic, kafka_partition, kafka_offset)"
                " VALUES ('stage-key-none', 0, 0)"
            )
    finally:
        conn.close()


@pytest.mark.parametrize("sink_id", ["two words", "a=b -c x=y", ""])
def test_a_sink_id_that_would_break_the_options_is_refused(sink_id):
    with pytest.raises(ValueError, match="sink id"):
        stage_key_options(sink_id, 1)
