"""The job's own classifier (parse_messages) over values the test hands it, on a local Spark
session: the one way the unit tests turn values into outcomes."""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import DataFrame, Row, SparkSession

from heartbeat_stream.transforms.validation import parse_messages

# The processing time the classifier is given: "now" for the future-timestamp check.
NOW = datetime(2026, 11, 29, 20, 0, 0, tzinfo=UTC)
BROKER_TIME = datetime(2026, 11, 29, 19, 59, 30, tzinfo=UTC)  # when the message reached Kafka
# The Kafka source's columns, and the processing time the job adds (with_processing_time).
_KAFKA_ROW = (
    "topic string, partition int, offset long, timestamp timestamp, value binary, "
    "processing_time timestamp"
)


def kafka_rows(spark: SparkSession, values: list[bytes | None]) -> DataFrame:
    """The values as Kafka rows of topic "t", partition 0, offsets 0.., broker time BROKER_TIME,
    processed at NOW."""
    rows = [("t", 0, offset, BROKER_TIME, value, NOW) for offset, value in enumerate(values)]
    return spark.createDataFrame(rows, _KAFKA_ROW)


def parse(spark: SparkSession, values: list[bytes | None], naive_zone: str = "UTC") -> DataFrame:
    """The values as kafka_rows, parsed by the job."""
    return parse_messages(kafka_rows(spark, values), naive_zone=naive_zone)


def outcomes(
    spark: SparkSession, values: list[bytes | None], naive_zone: str = "UTC"
) -> list[str | None]:
    """Each value's quarantine reason in order, None for a valid reading."""
    parsed = parse(spark, values, naive_zone).orderBy("kafka_offset")
    return [row.reason for row in parsed.select("reason").collect()]


class OnePass:
    """Many values, each classified alone by its test, parsed in one Spark job per zone.

    Building the classifier's plan is most of what a one-value parse costs (about 0.6 s of 0.9 s
    on the 2-core machine) and it classifies each row on its own, so tests that each look at one
    value can share a parse: the same rows, one plan per zone instead of one per test."""

    def __init__(self, spark: SparkSession, values_by_zone: dict[str, list[bytes | None]]) -> None:
        self._rows: dict[tuple[bytes | None, str], Row] = {}
        for zone, values in values_by_zone.items():
            unique = list(dict.fromkeys(values))
            for row in parse(spark, unique, naive_zone=zone).collect():
                self._rows[(unique[row.kafka_offset], zone)] = row

    def row(self, value: bytes | None, naive_zone: str = "UTC") -> Row:
        """The parsed row of `value` (read in `naive_zone`), as `parse` of it alone gives it."""
        try:
            return self._rows[(value, naive_zone)]
        except KeyError:
            raise AssertionError(
                f"{value!r} ({naive_zone}) is not among the values given to OnePass"
            ) from None

    def reason(self, value: bytes | None, naive_zone: str = "UTC") -> str | None:
        return self.row(value, naive_zone).reason
