"""Streaming job: backlog drain rate with and without rollups; batch durations when live.

Each measurement runs its own job (spark-submit, local[*]) on its own topic and checkpoint.
Stop the supervised stream-job and producer first (`supervisorctl stop ...`) for clean figures:
the machine's cores are shared.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg2
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from heartbeat_ops.config import StackConfig, load
from heartbeat_ops.programs import venv_bin
from heartbeat_ops.stream_job import StreamJob, wait_for
from heartbeat_producer.mix import known_mix
from heartbeat_producer.publisher import send_all

BACKLOG = int(os.environ.get("BENCH_STREAM_BACKLOG", "300000"))
BATCH = int(os.environ.get("BENCH_STREAM_BATCH", "50000"))
LIVE_SECONDS = int(os.environ.get("BENCH_STREAM_LIVE_SECONDS", "90"))


def _superuser(stack: StackConfig) -> psycopg2.extensions.connection:
    dsn = stack.dsn(user=stack.pg_superuser, password=stack.pg_superuser_password)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    return conn


def _landed(conn: psycopg2.extensions.connection, topic: str) -> int:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM heart_rate_readings WHERE kafka_topic = %s)"
            " + (SELECT count(*) FROM rejected_readings WHERE kafka_topic = %s)",
            (topic, topic),
        )
        return cur.fetchone()[0]


def _query_id(checkpoint: Path, query: str = "readings") -> str:
    """Spark writes a query's stable id into <checkpoint>/<query>/metadata at start."""
    return json.loads((checkpoint / query / "metadata").read_text())["id"]


def _batch_durations(conn, query_id: str) -> list[int]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT batch_duration_ms FROM pipeline_metrics WHERE query_id = %s AND input_rows > 0",
            (query_id,),
        )
        return [row[0] for row in cur.fetchall()]


def _processing_window(conn, query_ids: list[str]) -> tuple[int, float]:
    """(fewest rows any query read, seconds from the first batch's start to the last one's end),
    per the metrics listener."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT min(rows), extract(epoch FROM max(last_end) - min(first_start)) FROM ("
            " SELECT query_id, sum(input_rows) AS rows, min(batch_time) AS first_start,"
            "  max(batch_time + batch_duration_ms * interval '1 millisecond') AS last_end"
            " FROM pipeline_metrics WHERE query_id = ANY(%s) AND input_rows > 0"
            " GROUP BY query_id) q",
            (query_ids,),
        )
        rows, seconds = cur.fetchone()
        return int(rows or 0), float(seconds or 0)


def drain(stack: StackConfig, admin: KafkaAdminClient, workdir: Path, rollups: bool) -> None:
    """Publish a backlog first, then time the job's batches from the first one's start."""
    topic = f"bench-drain-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    conn = _superuser(stack)
    checkpoint = workdir / f"ck-{topic}"
    try:
        messages = known_mix(11, BACKLOG, customers=1000, span_seconds=600)
        send_all(messages, bootstrap_servers=stack.kafka_bootstrap_servers, topic=topic)
        job = StreamJob(
            stack,
            topic,
            str(checkpoint),
            workdir / f"{topic}.log",
            HEARTBEAT_ROLLUPS=str(rollups).lower(),
            HEARTBEAT_MAX_OFFSETS_PER_TRIGGER=str(BATCH),
        )
        job.start()
        try:
            wait_for(lambda: _landed(conn, topic) >= BACKLOG, 1800, "the backlog", poll=0.2)
            queries = [_query_id(checkpoint)]
            if rollups:
                queries.append(_query_id(checkpoint, "rollups"))
            # Both queries read the whole backlog; the listener records each batch as it ends.
            wait_for(lambda: _processing_window(conn, queries)[0] >= BACKLOG, 600, "all batches")
            rows, seconds = _processing_window(conn, queries)
            durations = _batch_durations(conn, queries[0])
        finally:
            job.stop()
        print(
            f"drain, rollups {'on ' if rollups else 'off'}: {rows:,} messages in "
            f"{len(durations)} batches of up to {BATCH:,}: {rows / seconds:,.0f} messages/s "
            f"(batch median {statistics.median(durations):,.0f} ms)",
            flush=True,
        )
    finally:
        conn.close()
        admin.delete_topics([topic])


def live(stack: StackConfig, admin: KafkaAdminClient, workdir: Path) -> None:
    """The producer's default rate (100 customers, 100 readings/s), the job's default trigger."""
    topic = f"bench-live-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    conn = _superuser(stack)
    checkpoint = workdir / f"ck-{topic}"
    job = StreamJob(
        stack,
        topic,
        str(checkpoint),
        workdir / f"{topic}.log",
        HEARTBEAT_TRIGGER_INTERVAL="",  # empty: the job's default triggers
        HEARTBEAT_ROLLUP_TRIGGER_INTERVAL="",
    )
    try:
        job.start()
        wait_for(lambda: (checkpoint / "readings" / "metadata").exists(), 300, "the job to start")
        ledger = workdir / f"{topic}.ledger.json"
        subprocess.run(
            [
                venv_bin("heartbeat-producer"),
                "--topic",
                topic,
                "--duration",
                str(LIVE_SECONDS),
                "--seed",
                "5",
                "--log-level",
                "WARNING",
                "--ledger",
                str(ledger),
            ],
            check=True,
        )
        sent = json.loads(ledger.read_text())["sent"]
        wait_for(lambda: _landed(conn, topic) >= sent, 120, "the last readings")
        durations = sorted(_batch_durations(conn, _query_id(checkpoint)))
    finally:
        job.stop()
        conn.close()
        admin.delete_topics([topic])
    p95 = durations[int(0.95 * (len(durations) - 1))]
    print(
        f"live, default trigger, 100 readings/s for {LIVE_SECONDS}s: {len(durations)} batches, "
        f"batch duration median {statistics.median(durations):,.0f} ms, p95 {p95:,.0f} ms",
        flush=True,
    )


def run() -> None:
    stack = load()
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap_servers)
    with tempfile.TemporaryDirectory(prefix="heartbeat-bench-") as tmp:
        workdir = Path(tmp)
        drain(stack, admin, workdir, rollups=False)
        drain(stack, admin, workdir, rollups=True)
        live(stack, admin, workdir)
    admin.close()
