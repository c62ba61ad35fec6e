"""Upsert minute rollups: Spark's update mode emits a window's whole current aggregate, so the
latest row simply replaces the stored one, and a replayed batch writes the same values again."""

from __future__ import annotations

from psycopg2.extensions import connection
from psycopg2.extras import execute_values

_UPSERT = """
INSERT INTO heart_rate_minute (customer_id, minute, readings, avg_bpm, min_bpm, max_bpm, bpm_bins)
VALUES %s
ON CONFLICT (customer_id, minute) DO UPDATE SET
    readings = EXCLUDED.readings, avg_bpm = EXCLUDED.avg_bpm, min_bpm = EXCLUDED.min_bpm,
    max_bpm = EXCLUDED.max_bpm, bpm_bins = EXCLUDED.bpm_bins, updated_at = now()
"""


def upsert_rollups(conn: connection, rows: list[tuple]) -> int:
    if rows:
        with conn, conn.cursor() as cur:
            execute_values(cur, _UPSERT, rows, page_size=1000)
    return len(rows)
