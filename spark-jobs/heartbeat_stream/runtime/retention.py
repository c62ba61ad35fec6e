"""Retire raw rows past their retention without making the dashboard wait on a lock.

Raw readings are partitioned by day: whole days past the horizon are dropped (sinks/partitions.py),
and the next days' partitions are made ahead in the same pass. Quarantined rows and pipeline
metrics are not partitioned (small, and rejected_readings' arrival-time index serves the
delete): they are deleted in chunks. Rollups (heart_rate_minute) and alert episodes are kept:
they are what the dashboard reads for long ranges, and they are small. The job runs this on a
timer, the first pass at its start; to run it once:
    python -m heartbeat_stream.runtime.retention
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql

from .. import config as job_config
from ..sinks import partitions

log = logging.getLogger("heartbeat.retention")


@dataclass(frozen=True)
class Target:
    table: str
    time_column: str
    days_setting: str  # which JobConfig field holds the horizon


# Chunked deletes; heart_rate_readings is retired by partition (prune_all).
TARGETS = (
    Target("rejected_readings", "ingested_at", "raw_retention_days"),
    Target("pipeline_metrics", "batch_time", "metrics_retention_days"),
)


def prune(
    conn: psycopg2.extensions.connection,
    table: str,
    time_column: str,
    days: int,
    chunk: int = 50_000,
) -> int:
    """Delete rows older than `days` days, `chunk` rows per transaction; returns rows deleted."""
    statement = sql.SQL(
        "DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table}"
        " WHERE {column} < now() - make_interval(days => %s) LIMIT %s))"
    ).format(table=sql.Identifier(table), column=sql.Identifier(time_column))
    total = 0
    while True:
        with conn, conn.cursor() as cur:
            cur.execute(statement, (days, chunk))
            deleted = cur.rowcount
        total += deleted
        if deleted < chunk:
            return total


def prune_all(config: job_config.JobConfig) -> dict[str, int]:
    """One pass: readings' partitions made ahead and old ones dropped, then the chunked deletes.
    Returns partitions made and dropped, and rows deleted per table."""
    conn = psycopg2.connect(**config.libpq_params)
    try:
        made = partitions.ensure_ahead(conn)
        dropped = partitions.drop_older_than(conn, config.raw_retention_days)
        if dropped:
            log.info("retention dropped partitions %s", ", ".join(dropped))
        deleted = {
            t.table: prune(conn, t.table, t.time_column, getattr(config, t.days_setting))
            for t in TARGETS
        }
        return {"partitions made": made, "partitions dropped": len(dropped), **deleted}
    finally:
        conn.close()


class RetentionTimer(threading.Thread):
    """Prunes every `retention_interval_seconds` in the background; errors are logged only."""

    def __init__(self, config: job_config.JobConfig) -> None:
        super().__init__(name="retention", daemon=True)
        self.config = config
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                deleted = prune_all(self.config)
                if any(deleted.values()):
                    log.info("retention pruned %s", deleted)
            except psycopg2.Error as error:
                log.warning("retention pass failed: %s", error)
            self.stopped.wait(self.config.retention_interval_seconds)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(prune_all(job_config.load()))
