"""Per-core rates of the job's stages: Kafka read, classification, stage write (Spark on one
core, local[1]); COPY and the rollup merge (PostgreSQL, one connection), all in one run.

The inputs of docs/scaling.md (benchmarks/cost_model.py) that a drain cannot separate: the
stream job's one Spark job per batch reads, classifies and writes the stage together, and its
transaction moves the readings and merges the rollups in one statement. Each Spark stage here
is the job's own code over the same topic rows, timed as a batch query:

- read: the Kafka source, every value's bytes summed (the rows must be fetched and decoded);
- classify: + with_processing_time and parse_messages, a hash of every output column summed
  (so no column is pruned away);
- classify, VARIANT only: the same with parse_messages' fast path off (every message parsed as
  a VARIANT): the fast path's reference, in the same run;
- stage write: + the JDBC append into stage_messages, keyed by its connections as the sink's.

Each is run BENCH_STAGES_ROUNDS times (3), in turn, after one warm-up; the median is printed. The
PostgreSQL side, in a fresh database made by the migrations: COPY of the valid rows into a
heart_rate_readings-shaped table (benchmarks/stream_job.py's reference), then the rollup merge
(the sink's own merge_sql) of the same rows into empty minutes and again into the minutes that
now exist (a live reading's usual case). Figures go to var/bench/<time>/spark_stages.json.
Needs the stack's Kafka and PostgreSQL (`make bench` starts them).

Settings (environment): BENCH_STAGES_BACKLOG (300,000), BENCH_STAGES_ROUNDS (3),
BENCH_CUSTOMERS (1,000).
"""

from __future__ import annotations

import glob
import io
import json
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from benchmarks._job_tree import JobTree, drop_database
from benchmarks.stream_job import Topics, copy_rate
from heartbeat_contract.kafka_security import JOB, spark_kafka_options
from heartbeat_ops.config import StackConfig, load, var_dir
from heartbeat_producer.config import SimulationConfig
from heartbeat_producer.publisher import send_all
from heartbeat_producer.simulator import Message, Simulator

BACKLOG = int(os.environ.get("BENCH_STAGES_BACKLOG", "300000"))
ROUNDS = max(1, int(os.environ.get("BENCH_STAGES_ROUNDS", "3")))
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "1000"))
RUN = 0  # the bench database's run number (JobTree.database)


def _say(text: str) -> None:
    print(text, flush=True)


def _timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def median_rates(rows: int, actions: dict[str, Callable[[], object]]) -> dict[str, dict]:
    """One warm-up of each action, then ROUNDS rounds timing each in turn (so a noisy moment
    of a shared machine falls on all of them): rows per second of each run and their median.
    ROUNDS is read when called, not when defined, so the tests' smallest run can lower it."""
    for action in actions.values():
        action()
    rates: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(ROUNDS):
        for name, action in actions.items():
            rates[name].append(rows / _timed(action))
    return {name: {"rates": each, "median": statistics.median(each)}
            for name, each in rates.items()}  # fmt: skip


def _spark():
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    jars = ",".join(sorted(glob.glob(str(var_dir() / "jars" / "spark" / "*.jar"))))
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("heartbeat-bench-stages")
        .config("spark.jars", jars)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", "-XX:-DontCompileHugeMethods")  # as submit.sh
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def spark_rates(stack: StackConfig, topic: str, db: StackConfig) -> dict[str, dict]:
    """The Spark stages on one core, each over the whole topic. A session already active
    in this process (the tests' own, with the same jars) is used as it is, and left running."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from heartbeat_stream.sinks.readings_sink import stage_key_options
    from heartbeat_stream.transforms.validation import parse_messages, with_processing_time

    active = SparkSession.getActiveSession()
    spark = active or _spark()
    try:
        kafka = (
            spark.read.format("kafka")
            .options(**spark_kafka_options(stack, JOB))
            .option("subscribe", topic)
            .option("startingOffsets", "earliest")
            .option("endingOffsets", "latest")
            .load()
        )
        parsed = parse_messages(with_processing_time(kafka))
        variant_only = parse_messages(with_processing_time(kafka), fast_path=False)
        every_column = F.sum(F.hash(*parsed.columns).cast("bigint"))
        url = f"jdbc:postgresql://{db.pg_host}:{db.pg_port}/{db.pg_database}"
        properties = {
            "user": db.pg_superuser, "password": db.pg_superuser_password,
            "driver": "org.postgresql.Driver", "batchsize": "10000",
            "reWriteBatchedInserts": "true", "numPartitions": "1",
        }  # fmt: skip
        batch = iter(range(1, 10_000))

        def stage_write() -> None:
            keyed = {**properties, "options": stage_key_options("bench-stages", next(batch))}
            parsed.write.jdbc(url, "stage_messages", mode="append", properties=keyed)
            with _connect(db) as conn, conn.cursor() as cur:
                cur.execute("TRUNCATE stage_messages")

        return median_rates(
            BACKLOG,
            {
                "read": lambda: kafka.agg(F.sum(F.length("value"))).collect(),
                "classify": lambda: parsed.agg(every_column).collect(),
                "classify_variant_only": lambda: variant_only.agg(every_column).collect(),
                "stage_write": stage_write,
            },
        )
    finally:
        if active is None:
            spark.stop()


def _connect(db: StackConfig):
    import psycopg2

    conn = psycopg2.connect(db.admin_dsn)
    conn.autocommit = True
    return conn


def rollup_merge_rates(db: StackConfig, messages: list[Message]) -> dict[str, float]:
    """The sink's merge_sql over the valid rows from an UNLOGGED table, committed: first into
    empty minutes, then the same rows again into the minutes that now exist."""
    from heartbeat_stream.sinks.rollups import merge_sql

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    buffer = io.StringIO()
    rows = 0
    for m in messages:
        if m.outcome == "valid":
            at = epoch + timedelta(milliseconds=m.timestamp_ms)
            buffer.write(f"{m.customer_id}\t{at.isoformat()}\t{m.heart_rate}\n")
            rows += 1
    buffer.seek(0)
    conn = _connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(
                'CREATE UNLOGGED TABLE bench_merge (customer_id text, "timestamp" timestamptz,'
                " heart_rate integer)"
            )
            cur.copy_expert(
                'COPY bench_merge (customer_id, "timestamp", heart_rate) FROM STDIN', buffer
            )
            cur.execute("ANALYZE bench_merge")
            merge = f"WITH src AS (SELECT * FROM bench_merge) {merge_sql('src')}"
            new = rows / _timed(lambda: cur.execute(merge))
            existing = rows / _timed(lambda: cur.execute(merge))
            cur.execute("SELECT count(*) FROM heart_rate_minute")
            minutes = cur.fetchone()[0]
    finally:
        conn.close()
    return {"rows": rows, "minutes": minutes, "new_minutes": new, "existing_minutes": existing}


def run() -> None:
    stack = load()
    tree = JobTree.current()
    db = tree.database(stack, RUN).model_copy(
        update={"pg_database": "heartbeat_bench_drain_stages"}
    )
    workdir = var_dir() / "bench" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    workdir.mkdir(parents=True)
    load_start = os.getloadavg()
    _say(f"machine: {os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {workdir}")
    _say(f"load average (1/5/15 min) at the start: {'/'.join(f'{x:.2f}' for x in load_start)}")
    topics = Topics(stack)
    results: dict[str, object] = {"date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
                                  "backlog": BACKLOG, "rounds": ROUNDS}  # fmt: skip
    try:
        start = datetime.now(UTC) - timedelta(seconds=BACKLOG / CUSTOMERS + 5)
        config = SimulationConfig(customers=CUSTOMERS, seed=11)
        messages = Simulator(config, start=start).take(BACKLOG)
        topic = topics.new("stages")
        send_all(messages, bootstrap_servers=stack.kafka_bootstrap_servers, topic=topic,
                 timeout=900)  # fmt: skip
        results["published"] = dict(Counter(m.outcome for m in messages))
        _say(f"backlog: {BACKLOG:,} messages, {CUSTOMERS:,} customers: {results['published']}")
        tree.provision(db)
        conn = _connect(db)
        try:
            results["copy"] = copy_rate(conn, messages)
        finally:
            conn.close()
        _say(
            "  PostgreSQL COPY into a heart_rate_readings-shaped table:"
            f" {results['copy']:,.0f} rows/s"
        )
        spark = spark_rates(stack, topic, db)
        results["spark"] = spark
        for name, figure in spark.items():
            each = ", ".join(f"{r:,.0f}" for r in figure["rates"])
            _say(f"  Spark, one core, {name}: median {figure['median']:,.0f} messages/s ({each})")
        merge = rollup_merge_rates(db, messages)
        results["rollup_merge"] = merge
        _say(
            f"  rollup merge of {merge['rows']:,} readings into {merge['minutes']:,} minutes:"
            f" {merge['new_minutes']:,.0f} rows/s into new minutes,"
            f" {merge['existing_minutes']:,.0f} rows/s into existing ones"
        )
    finally:
        results["load"] = [load_start[0], os.getloadavg()[0]]
        (workdir / "spark_stages.json").write_text(json.dumps(results, indent=1))
        _say(
            f"load average (1 min) at the start / end: {load_start[0]:.2f} /"
            f" {os.getloadavg()[0]:.2f}"
        )
        _say(f"figures: {workdir / 'spark_stages.json'}")
        topics.close()
        drop_database(db)
