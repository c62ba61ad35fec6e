"""Prune raw rows past their retention, in small chunks so the dashboard never waits on a lock.

Rollups (heart_rate_minute) and alert episodes are kept: they are what the dashboard reads for
long ranges, and they are small. The job runs this on a timer; to run it once:
    python -m heartbeat_stream.runtime.retention
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql

from .. import config as job_config

log = logging.getLogger("heartbeat.retention")


@dataclass(frozen=True)
class Target:
    table: str
    time_column: str
    days_setting: str  # which JobConfig field holds the horizon


TARGETS = (
    Target("heart_rate_readings", "timestamp", "raw_retention_days"),
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
    conn = psycopg2.connect(**config.libpq_params)
    try:
        return {
            t.table: prune(conn, t.table, t.time_column, getattr(config, t.days_setting))
            for t in TARGETS
        }
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
