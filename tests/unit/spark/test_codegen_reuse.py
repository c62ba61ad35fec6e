"""Per-batch values are data, not code: the classifier compiles once, whatever the batch.

Spark compiles an expression tree into Java and caches the class by its source text. A literal
that changes every micro-batch (current_timestamp(), a batch id) is written into that source, so
every batch compiled the whole classifier again and ran it cold (issue 20). Counted with Spark's
own CodeGenerator metric: one tick per compilation, i.e. per "Code generated in" log line.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from heartbeat_stream.transforms.validation import (
    PARSED_COLUMNS,
    PROCESSING_TIME,
    parse_messages,
    with_processing_time,
)

pytestmark = pytest.mark.unit

_KAFKA_ROW = "topic string, partition int, offset long, timestamp timestamp, value binary"
_VALUES = [
    b'{"customer_id": "C1", "timestamp": "2026-11-29T19:59:00Z", "heart_rate": 72}',
    b'{"customer_id": "C2", "timestamp": "2999-01-01T00:00:00Z", "heart_rate": 72}',
    b"{broken",
]


def _kafka_rows(spark):
    at = datetime(2026, 11, 29, 19, 59, 30, tzinfo=UTC)
    rows = [("t", 0, offset, at, value) for offset, value in enumerate(_VALUES)]
    return spark.createDataFrame(rows, _KAFKA_ROW)


def _compilations(spark) -> int:
    metrics = spark.sparkContext._jvm.org.apache.spark.metrics.source.CodegenMetrics
    return metrics.METRIC_COMPILATION_TIME().getCount()


def test_processing_time_is_one_instant_of_now_for_every_row(spark):
    before = datetime.now(UTC)
    rows = with_processing_time(_kafka_rows(spark)).collect()
    after = datetime.now(UTC)
    instants = {row[PROCESSING_TIME] for row in rows}
    assert len(rows) == len(_VALUES) and len(instants) == 1
    (instant,) = instants
    assert before.replace(microsecond=0) <= instant.astimezone(UTC) <= after


def test_the_classified_batch_is_the_stages_columns(spark):
    """The sink appends the classified batch as it is: its columns are the stage's, by name
    (the key comes from the connection, readings_sink.stage_key_options)."""
    parsed = parse_messages(with_processing_time(_kafka_rows(spark)))
    assert tuple(parsed.columns) == PARSED_COLUMNS
    rows = parsed.orderBy("kafka_offset").collect()
    assert [row.reason for row in rows] == [None, "invalid_timestamp", "malformed_json"]


def test_a_later_batch_compiles_no_new_code(spark):
    """Each call plans the batch afresh, as a micro-batch does, with a new processing time. The
    second must reuse every class the first compiled."""
    frame = _kafka_rows(spark)

    def run_batch() -> None:
        parse_messages(with_processing_time(frame)).write.format("noop").mode("overwrite").save()

    run_batch()
    compiled = _compilations(spark)
    run_batch()
    assert _compilations(spark) == compiled
