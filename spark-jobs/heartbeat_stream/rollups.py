"""Per-customer one-minute rollups of valid readings: a pure, watermarked aggregation."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

ROLLUP_COLUMNS = ("customer_id", "minute", "readings", "avg_bpm", "min_bpm", "max_bpm")


def valid_readings(parsed: DataFrame) -> DataFrame:
    """The valid rows of parse_messages()'s output."""
    return parsed.filter(F.col("reason").isNull()).select("customer_id", "timestamp", "heart_rate")


def minute_rollups(readings: DataFrame, watermark: str) -> DataFrame:
    """Tumbling one-minute windows per customer.

    In a stream, Spark keeps each window's state until the watermark (latest event time seen
    minus `watermark`) passes its end: later readings still update it, readings behind the
    watermark are left out of the rollup (they are still stored raw). In a batch the watermark
    is a no-op, which is what the unit tests use.
    """
    return (
        readings.withWatermark("timestamp", watermark)
        .groupBy("customer_id", F.window("timestamp", "1 minute"))
        .agg(
            F.count("*").cast("int").alias("readings"),
            F.avg("heart_rate").alias("avg_bpm"),
            F.min("heart_rate").cast("int").alias("min_bpm"),
            F.max("heart_rate").cast("int").alias("max_bpm"),
        )
        .select("customer_id", F.col("window.start").alias("minute"), *ROLLUP_COLUMNS[2:])
    )
