"""Minute rollups, merged additively from the rows a batch inserts, inside its transaction.

No watermark and no state store: every inserted reading, however late, is added to its
(customer, minute), and a replayed batch inserts nothing and so adds nothing. heart_rate_minute
therefore equals SQL over heart_rate_readings by construction (until retention deletes raw rows,
whose rollups are kept).
"""

from __future__ import annotations

from heartbeat_contract import BIN_COUNT, BIN_WIDTH_BPM, MIN_VALID_BPM


def _bins(rows: str) -> str:
    """SQL: an integer[BIN_COUNT] of readings per bpm bin, aggregated over `rows`' heart_rate."""
    index = f"({rows}.heart_rate - {MIN_VALID_BPM}) / {BIN_WIDTH_BPM}"
    counts = ", ".join(f"count(*) FILTER (WHERE {index} = {k})" for k in range(BIN_COUNT))
    return f"ARRAY[{counts}]::integer[]"


def merge_sql(inserted: str) -> str:
    """An INSERT that adds the CTE `inserted` (customer_id, "timestamp", heart_rate) to the
    rollups. Rows are grouped and ordered by key, so two writers lock minutes in one order."""
    return f"""
INSERT INTO heart_rate_minute AS stored
    (customer_id, minute, readings, sum_bpm, min_bpm, max_bpm, bpm_bins)
SELECT {inserted}.customer_id, date_trunc('minute', {inserted}."timestamp", 'UTC'), count(*),
       sum({inserted}.heart_rate), min({inserted}.heart_rate), max({inserted}.heart_rate),
       {_bins(inserted)}
FROM {inserted}
GROUP BY 1, 2
ORDER BY 1, 2
ON CONFLICT (customer_id, minute) DO UPDATE SET
    readings = stored.readings + EXCLUDED.readings,
    sum_bpm = stored.sum_bpm + EXCLUDED.sum_bpm,
    min_bpm = least(stored.min_bpm, EXCLUDED.min_bpm),
    max_bpm = greatest(stored.max_bpm, EXCLUDED.max_bpm),
    bpm_bins = add_bins(stored.bpm_bins, EXCLUDED.bpm_bins),
    updated_at = now()
"""


_READING_COLUMNS = (
    "customer_id", '"timestamp"', "heart_rate", "kafka_topic", "kafka_partition", "kafka_offset"
)  # fmt: skip


def move_readings_sql(
    source: str, *, with_ingested_at: bool = False, skip_stored: bool = True
) -> str:
    """One statement: insert the valid readings of `source` (a table, with any WHERE) into
    heart_rate_readings, skipping provenance already stored, and add the rows it actually
    inserted to their minutes. It returns one row: (readings inserted, minutes merged).

    With `skip_stored=False` a provenance already stored fails the statement with a unique
    violation instead of being skipped: no speculative insertion per row, a quarter of the
    move's time (batch_commit runs it first, inside a savepoint)."""
    columns = ", ".join(_READING_COLUMNS + (("ingested_at",) if with_ingested_at else ()))
    on_conflict = (
        "ON CONFLICT ON CONSTRAINT heart_rate_readings_provenance DO NOTHING" if skip_stored else ""
    )
    return f"""
WITH moved AS (
    INSERT INTO heart_rate_readings ({columns})
    SELECT {columns} FROM {source}
    {on_conflict}
    RETURNING customer_id, "timestamp", heart_rate
), merged AS (
    {merge_sql("moved")}
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM merged)
"""
