"""The read replica's lag in pipeline_metrics (query_name 'replica', sql/014): one row per
replication slot each round of the notifier's figures, so the pipeline-health charts show it.

Why the notifier: its figures round already runs every 10 s against the primary whatever the
stream does (the job's metrics come per batch, and an idle topic makes none), so the lag is
recorded without a new long-running process. Without a replica there is no slot and no row.
"""

from __future__ import annotations

from datetime import datetime

QUERY_NAME = "replica"

_INSERT = """
INSERT INTO pipeline_metrics (query_id, query_name, batch_id, run_id, batch_time, input_rows,
    batch_duration_ms, replica_lag_bytes, replica_lag_seconds, details)
SELECT %(prefix)s || slot_name, %(name)s, %(batch_id)s, %(run_id)s, %(at)s, 0, %(duration_ms)s,
    lag_bytes, lag_seconds, jsonb_build_object('streaming', streaming)
FROM heartbeat_replica_lag()
"""  # no ON CONFLICT: its arbiter needs SELECT, and the role may only insert here


def record(cur, *, run_id: str, ended_at: datetime, seconds: float) -> int:
    """Insert this round's lag rows; returns how many (one per replica, 0 without one)."""
    cur.execute(
        _INSERT,
        {
            "prefix": f"{QUERY_NAME}:",
            "name": QUERY_NAME,
            "batch_id": int(ended_at.timestamp() * 1000),
            "run_id": run_id,
            "at": ended_at,
            "duration_ms": round(max(seconds, 1e-3) * 1000),
        },
    )
    return cur.rowcount
