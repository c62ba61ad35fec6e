"""Batch transaction into heart_rate_readings before (sql/005) and after (sql/006) partitioning.

Two scratch databases, one migrated to 005 and one to the latest; in each, batches of
BENCH_PARTITION_ROWS valid readings (spread over the last hour, 1,000 customers) are staged
with COPY and moved by the sink's own repository.commit_batch (partitions ensured, insert,
rollups, alert state); the median time per batch is printed, and for 006 the cost of the
per-batch partition check on its own. Both databases are dropped afterwards.
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
from psycopg2 import sql

from heartbeat_ops import migrate
from heartbeat_ops.config import load, scrub_ambient_libpq
from heartbeat_stream import repository
from heartbeat_stream.sinks.alert_store import AlertRules
from heartbeat_stream.sinks.partitions import ENSURE_FOR_BATCH

ROWS = int(os.environ.get("BENCH_PARTITION_ROWS", "100000"))
BATCHES = int(os.environ.get("BENCH_PARTITION_BATCHES", "5"))
SINK = "bench-partitions"


def _say(message: str) -> None:
    print(message, flush=True)


def _stage(conn, batch_id: int) -> None:
    now = datetime.now(UTC)
    buffer = io.StringIO()
    for i in range(ROWS):
        at = now - timedelta(seconds=3600 * i / ROWS)
        offset = batch_id * ROWS + i
        buffer.write(f"{SINK}\t{batch_id}\tbench\t{i % 3}\t{offset}\tC{i % 1000}\t{at.isoformat()}")
        buffer.write(f"\t{60 + i % 60}\n")
    buffer.seek(0)
    with conn, conn.cursor() as cur:
        cur.copy_expert(
            "COPY stage_messages (sink_id, batch_id, kafka_topic, kafka_partition, kafka_offset,"
            ' customer_id, "timestamp", heart_rate) FROM STDIN',
            buffer,
        )
        cur.execute("ANALYZE stage_messages")


def _batch_seconds(conn, partitioned: bool) -> list[float]:
    # At 005 the transaction had no partition check: run it as it was then.
    repository.ENSURE_FOR_BATCH = ENSURE_FOR_BATCH if partitioned else "SELECT 0"
    times = []
    for batch_id in range(BATCHES):
        _stage(conn, batch_id)
        started = time.monotonic()
        outcome = repository.commit_batch(conn, SINK, batch_id, AlertRules())
        times.append(time.monotonic() - started)
        assert outcome.valid == ROWS, outcome
    return times


def _ensure_seconds(conn) -> float:
    """The per-batch partition check alone, on a staged batch whose days all exist."""
    _stage(conn, BATCHES)
    times = []
    with conn.cursor() as cur:
        for _ in range(5):
            started = time.monotonic()
            cur.execute(ENSURE_FOR_BATCH, {"sink_id": SINK, "batch_id": BATCHES})
            times.append(time.monotonic() - started)
    conn.rollback()
    return statistics.median(times)


def run() -> None:
    scrub_ambient_libpq()
    stack = load()

    def dsn(database: str) -> str:
        return stack.dsn(
            user=stack.pg_superuser, password=stack.pg_superuser_password, database=database
        )

    admin = psycopg2.connect(dsn("postgres"))
    admin.autocommit = True
    with tempfile.TemporaryDirectory() as old:
        for path in sorted(migrate.MIGRATIONS_DIR.glob("00[1-5]_*.sql")):
            shutil.copy(path, Path(old) / path.name)
        results = {}
        for label, directory in (("005 (one table)", Path(old)), ("006 (by day)", None)):
            name = f"bench_partitions_{os.getpid()}"
            with admin.cursor() as cur:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            try:
                migrate.apply_all(dsn(name), directory or migrate.MIGRATIONS_DIR)
                conn = psycopg2.connect(dsn(name), options="-c jit=off -c work_mem=64MB")
                try:
                    times = _batch_seconds(conn, partitioned=directory is None)
                    results[label] = statistics.median(times[1:])  # the first warms caches
                    _say(f"  {label}: batch of {ROWS:,} moved in {results[label]:.2f}s median"
                         f" ({', '.join(f'{t:.2f}' for t in times)})")  # fmt: skip
                    if directory is None:
                        _say(f"  006 per-batch partition check: {_ensure_seconds(conn) * 1000:.1f}"
                             " ms median")  # fmt: skip
                finally:
                    conn.close()
            finally:
                with admin.cursor() as cur:
                    cur.execute(
                        sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
                    )
    admin.close()
    repository.ENSURE_FOR_BATCH = ENSURE_FOR_BATCH
    before, after = results["005 (one table)"], results["006 (by day)"]
    _say(f"  partitioned / unpartitioned: {after / before:.2f}x time per batch")
