"""Minute rollups: windows, aggregates, and the watermark's treatment of late data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from heartbeat_stream.rollups import minute_rollups, valid_readings

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 29, 20, 0, 0, tzinfo=UTC)
SCHEMA = "customer_id string, timestamp timestamp, heart_rate int"
ROLLUP_SCHEMA = (
    "customer_id string, minute timestamp, readings int, avg_bpm double, min_bpm int, max_bpm int,"
    " bpm_bins array<int>"
)


def bins(counts: dict[int, int]) -> list[int]:
    """29 five-bpm bins from 40; `counts` maps a bin's lower bound to its count."""
    return [counts.get(40 + 5 * k, 0) for k in range(29)]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_one_minute_windows_per_customer(spark):
    readings = spark.createDataFrame(
        [("A", at(0), 60), ("A", at(30), 80), ("A", at(59.999), 70), ("A", at(60), 100),
         ("B", at(10), 50)], SCHEMA)  # fmt: skip
    expected = spark.createDataFrame(
        [("A", at(0), 3, 70.0, 60, 80, bins({60: 1, 80: 1, 70: 1})),
         ("A", at(60), 1, 100.0, 100, 100, bins({100: 1})),
         ("B", at(0), 1, 50.0, 50, 50, bins({50: 1}))], ROLLUP_SCHEMA)  # fmt: skip
    assert_df_equality(
        minute_rollups(readings, "2 minutes"), expected, ignore_row_order=True, ignore_nullable=True
    )


def test_bins_cover_the_valid_range_with_exact_edges(spark):
    rates = [40, 44, 45, 49, 50, 119, 120, 175, 179, 180]
    readings = spark.createDataFrame([("A", at(i), r) for i, r in enumerate(rates)], SCHEMA)
    (row,) = minute_rollups(readings, "2 minutes").collect()
    assert row.bpm_bins == bins({40: 2, 45: 2, 50: 1, 115: 1, 120: 1, 175: 2, 180: 1})
    assert sum(row.bpm_bins) == row.readings


def test_only_valid_readings_are_rolled_up(spark):
    parsed = spark.createDataFrame(
        [("A", at(0), 60, None), (None, None, None, "out_of_range")],
        "customer_id string, timestamp timestamp, heart_rate int, reason string",
    )
    assert valid_readings(parsed).count() == 1


def _stream_rollups(spark, tmp_path, batches):
    """Feed batches through a real streaming query with a watermark; return final rollups."""
    source_dir = tmp_path / "source"
    source_dir.mkdir()
    stream = spark.readStream.schema(SCHEMA).parquet(str(source_dir))
    query = (
        minute_rollups(stream, "2 minutes")
        .writeStream.outputMode("update")
        .format("memory")
        .queryName(f"rollups_{tmp_path.name}")
        .option("checkpointLocation", str(tmp_path / "ck"))
        .start()
    )
    try:
        for rows in batches:
            spark.createDataFrame(rows, SCHEMA).write.mode("append").parquet(str(source_dir))
            query.processAllAvailable()
        emitted = spark.table(f"rollups_{tmp_path.name}")
        # Update mode emits each window's latest aggregate; keep the last emission per window.
        return {
            (r.customer_id, r.minute.replace(tzinfo=UTC)): (r.readings, r.max_bpm)
            for r in emitted.orderBy(F.monotonically_increasing_id()).collect()
        }
    finally:
        query.stop()


def test_late_reading_inside_the_watermark_updates_its_minute(spark, tmp_path):
    result = _stream_rollups(spark, tmp_path, [
        [("A", at(10), 70), ("A", at(70), 72)],
        [("A", at(130), 75)],          # watermark now 10 s: minute 0 still open
        [("A", at(20), 150)],          # late by 110 s, inside the 2-minute watermark
    ])  # fmt: skip
    assert result[("A", at(0))] == (2, 150)


def test_late_reading_beyond_the_watermark_is_left_out(spark, tmp_path):
    result = _stream_rollups(spark, tmp_path, [
        [("A", at(10), 70)],
        [("A", at(400), 75)],          # watermark moves to 280 s: minute 0 is final
        [("A", at(20), 150)],          # too late for its minute
        [("A", at(401), 76)],
    ])  # fmt: skip
    assert result[("A", at(0))] == (1, 70)
