"""Per-customer one-minute rollups of valid readings: a pure, watermarked aggregation."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from heartbeat_contract import MAX_VALID_BPM, MIN_VALID_BPM

ROLLUP_COLUMNS = (
    "customer_id", "minute", "readings", "avg_bpm", "min_bpm", "max_bpm", "bpm_bins",
)  # fmt: skip
BIN_WIDTH_BPM = 5
BIN_COUNT = (MAX_VALID_BPM - MIN_VALID_BPM) // BIN_WIDTH_BPM + 1  # 29: the last holds only 180


def valid_readings(parsed: DataFrame) -> DataFrame:
    """The valid rows of parse_messages()'s output."""
    return parsed.filter(F.col("reason").isNull()).select("customer_id", "timestamp", "heart_rate")


def _bin_counts() -> Column:
    """An array of BIN_COUNT counts: readings per 5-bpm bin from MIN_VALID_BPM."""
    index = F.floor((F.col("heart_rate") - MIN_VALID_BPM) / BIN_WIDTH_BPM)
    return F.array(*(F.count(F.when(index == k, True)).cast("int") for k in range(BIN_COUNT)))


def minute_rollups(readings: DataFrame, watermark: str) -> DataFrame:
    """Tumbling one-minute windows per customer.

    `bpm_bins` counts the window's readings per 5-bpm bin, so the dashboard's histogram reads
    rollups rather than raw rows. In a stream, Spark keeps each window's state until the
    watermark (latest event time seen minus `watermark`) passes its end: later readings still
    update it, readings behind the watermark are left out of the rollup (they are still stored
    raw). In a batch the watermark is a no-op, which is what the unit tests use.
    """
    return (
        readings.withWatermark("timestamp", watermark)
        .groupBy("customer_id", F.window("timestamp", "1 minute"))
        .agg(
            F.count("*").cast("int").alias("readings"),
            F.avg("heart_rate").alias("avg_bpm"),
            F.min("heart_rate").cast("int").alias("min_bpm"),
            F.max("heart_rate").cast("int").alias("max_bpm"),
            _bin_counts().alias("bpm_bins"),
        )
        .select("customer_id", F.col("window.start").alias("minute"), *ROLLUP_COLUMNS[2:])
    )
