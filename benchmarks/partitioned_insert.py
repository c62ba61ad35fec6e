"""The batch transaction alone, on partitioned readings: time per batch, and the partition check.

A scratch database at the latest migrations; batches of BENCH_PARTITION_ROWS valid readings
(spread over the last hour, 1,000 customers) are staged with COPY and moved by the sink's own
batch_commit.commit_batch (partitions ensured, insert, rollups, alert rules, activity), as the job
does, but without Spark: what PostgreSQL's side of a batch costs. Batches alternate between the
transaction as the job runs it and the same transaction without its per-batch partition check;
both medians are printed, and the check's own time. BENCH_PARTITION_BATCHES batches of each
(the first of each, warming caches, left out). The database is dropped afterwards.

Before the alert rules this benchmark compared a database at sql/005 (one readings table) with
one at sql/006 (by day), both moved by the sink of its day. Today's batch transaction needs the
tables of sql/008 and later, so it cannot run against sql/005; that comparison (no difference
beyond the noise: README, "Measured figures") stays as measured then.
"""

from __future__ import annotations

import io
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg2
from psycopg2 import sql

from heartbeat_ops import migrate
from heartbeat_ops.config import load, scrub_ambient_libpq
from heartbeat_stream.sinks import batch_commit
from heartbeat_stream.sinks.alert_store import AlertRules
from heartbeat_stream.sinks.partitions import ENSURE_FOR_BATCH

ROWS = int(os.environ.get("BENCH_PARTITION_ROWS", "100000"))
BATCHES = int(os.environ.get("BENCH_PARTITION_BATCHES", "5"))
SINK = "bench-partitions"
NO_CHECK = "SELECT 0"  # the partition check's place in the transaction, doing nothing


def _say(message: str) -> None:
    print(message, flush=True)


def _stage(conn, batch_id: int) -> None:
    now = datetime.now(UTC)
    buffer = io.StringIO()
    for i in range(ROWS):
        at = (now - timedelta(seconds=3600 * i / ROWS)).isoformat()
        offset = batch_id * ROWS + i
        buffer.write(f"{SINK}\t{batch_id}\tbench\t{i % 3}\t{offset}\tC{i % 1000}\t{at}")
        buffer.write(f"\t{60 + i % 60}\t{at}\n")
    buffer.seek(0)
    with conn, conn.cursor() as cur:
        cur.copy_expert(
            "COPY stage_messages (sink_id, batch_id, kafka_topic, kafka_partition, kafka_offset,"
            ' customer_id, "timestamp", heart_rate, kafka_timestamp) FROM STDIN',
            buffer,
        )
        cur.execute("ANALYZE stage_messages")


def _batch_seconds(conn) -> dict[str, list[float]]:
    """Seconds per batch transaction, with the partition check and without, alternating."""
    times: dict[str, list[float]] = {ENSURE_FOR_BATCH: [], NO_CHECK: []}
    try:
        for batch_id in range(2 * BATCHES):
            check = ENSURE_FOR_BATCH if batch_id % 2 == 0 else NO_CHECK
            batch_commit.ENSURE_FOR_BATCH = check
            _stage(conn, batch_id)
            started = time.monotonic()
            outcome = batch_commit.commit_batch(conn, SINK, batch_id, AlertRules())
            times[check].append(time.monotonic() - started)
            assert outcome.valid == ROWS, outcome
    finally:
        batch_commit.ENSURE_FOR_BATCH = ENSURE_FOR_BATCH
    return times


def _check_seconds(conn) -> float:
    """The per-batch partition check alone, on a staged batch whose days all exist."""
    batch_id = 2 * BATCHES
    _stage(conn, batch_id)
    times = []
    with conn.cursor() as cur:
        for _ in range(5):
            started = time.monotonic()
            cur.execute(ENSURE_FOR_BATCH, {"sink_id": SINK, "batch_id": batch_id})
            times.append(time.monotonic() - started)
    conn.rollback()
    return statistics.median(times)


def _median(times: list[float]) -> float:
    return statistics.median(times[1:] or times)  # the first warms caches


def run() -> None:
    scrub_ambient_libpq()
    stack = load()
    name = f"heartbeat_bench_partitions_{os.getpid()}"

    def dsn(database: str) -> str:
        return stack.dsn(
            user=stack.pg_superuser, password=stack.pg_superuser_password, database=database
        )

    admin = psycopg2.connect(dsn("postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        migrate.apply_all(dsn(name))
        conn = psycopg2.connect(dsn(name), options="-c jit=off -c work_mem=64MB")
        try:
            times = _batch_seconds(conn)
            check = _check_seconds(conn)
        finally:
            conn.close()
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()
    with_check, without = _median(times[ENSURE_FOR_BATCH]), _median(times[NO_CHECK])
    for label, seconds in (("as the job runs it", times[ENSURE_FOR_BATCH]),
                           ("without the partition check", times[NO_CHECK])):  # fmt: skip
        _say(f"  batch of {ROWS:,} {label}: {_median(seconds):.2f}s median"
             f" ({', '.join(f'{t:.2f}' for t in seconds)})")  # fmt: skip
    _say(f"  the per-batch partition check alone: {check * 1000:.1f} ms median")
    _say(f"  with / without the check: {with_check / without:.2f}x time per batch")
