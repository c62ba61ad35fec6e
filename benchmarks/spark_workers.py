"""Spark workers: the job's drain on compose's standalone cluster with one worker, then two,
side by side with the cores each had and PostgreSQL's COPY in the same run; bytes per reading.

The stack is docker-compose.yml's own services (postgres, kafka, init, spark-master,
spark-worker, stream-job), run from an image of this checkout (BENCH_IMAGE, built here; layers
are cached). The backlog (the producer's default mix, BENCH_CUSTOMERS customers reading once a
second, ending now) is published once through the producer's container. For each worker count
the job's database is dropped and provisioned again by `init`, the checkpoint volume is new,
the workers are scaled, and the stream-job service drains the topic; the drain is read from its
pipeline_metrics as benchmarks/stream_job.py reads it. Before each drain, COPY of the backlog's
valid rows into a heart_rate_readings-shaped table in the same PostgreSQL is the reference.
Each worker count's drain gets the cores the master's /json/ reports, printed beside it.

After the first drain: the bytes per message of the topic's log segments in the kafka container
and, in PostgreSQL, of the readings (table, indexes), the rollups and the quarantine: the inputs
of docs/scaling.md (benchmarks/cost_model.py). Everything is also written as JSON
(var/bench/<time>/spark_workers.json).

Settings (environment):
- BENCH_WORKERS_BACKLOG (300,000), BENCH_CUSTOMERS (1,000), BENCH_WORKER_COUNTS ("1,2"),
  BENCH_WORKER_CORES (1: each worker offers one core, so two workers double the cores),
  BENCH_IMAGE (heartbeat-bench:latest).
- COMPOSE_PROJECT_NAME (heartbeat-bench-workers), POSTGRES_HOST_PORT,
  SPARK_MASTER_UI_HOST_PORT and the other *_HOST_PORT of docker-compose.yml: as for
  `make compose-test`. dockerd is started (and stopped afterwards) by docker/host.sh when none
  answers; one that was running is left alone. The project is removed (`down -v`) at the end.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2

from benchmarks import _batch_times
from heartbeat_ops.config import ROOT, var_dir

BACKLOG = int(os.environ.get("BENCH_WORKERS_BACKLOG", "300000"))
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "1000"))
WORKER_COUNTS = tuple(int(n) for n in os.environ.get("BENCH_WORKER_COUNTS", "1,2").split(",") if n)
WORKER_CORES = int(os.environ.get("BENCH_WORKER_CORES", "1"))
IMAGE = os.environ.get("BENCH_IMAGE", "heartbeat-bench:latest")
PROJECT = os.environ.get("COMPOSE_PROJECT_NAME", "heartbeat-bench-workers")
PG_PORT = int(os.environ.get("POSTGRES_HOST_PORT", "15432"))
MASTER_PORT = int(os.environ.get("SPARK_MASTER_UI_HOST_PORT", "18080"))
DATABASE = "heartbeat"
# The services of the image that this benchmark runs (superset, producer's loop and the
# notifier are not started).
APP_SERVICES = (
    "postgres",
    "kafka",
    "init",
    "spark-master",
    "spark-worker",
    "stream-job",
    "producer",
)

# Run in the producer's container (its principal's password comes from the secrets volume).
PUBLISH = """
import json, os
from collections import Counter
from datetime import UTC, datetime, timedelta
from heartbeat_producer.config import SimulationConfig
from heartbeat_producer.publisher import send_all
from heartbeat_producer.simulator import Simulator
count, customers = int(os.environ["BENCH_BACKLOG"]), int(os.environ["BENCH_CUSTOMERS"])
start = datetime.now(UTC) - timedelta(seconds=count / customers + 5)
messages = Simulator(SimulationConfig(customers=customers, seed=11), start=start).take(count)
send_all(messages, bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
         topic=os.environ["KAFKA_TOPIC"], timeout=900)
print(json.dumps(Counter(m.outcome for m in messages)))
"""

# The topic's log segments (the messages as Kafka stores them, batches compressed by the
# producer); index files are preallocated and sparse, so they are left out.
KAFKA_LOG_BYTES = (
    "cat /var/lib/heartbeat/data/kafka/heart-rate-readings-*/*.log | wc -c"
)  # fmt: skip

# Bytes of each relation family, tables and their partitions together (heart_rate_readings is
# partitioned by day: its partitions hold the rows; a plain table is its own family).
STORAGE = """
WITH family AS (
    SELECT t.relname AS family, coalesce(p.relid, t.oid) AS relid
    FROM pg_class t LEFT JOIN LATERAL pg_partition_tree(t.oid) p ON true
    WHERE t.relname IN ('heart_rate_readings', 'heart_rate_minute', 'heart_rate_hour',
                        'heart_rate_hour_total', 'rejected_readings')
      AND t.relnamespace = 'public'::regnamespace AND t.relkind IN ('r', 'p')
)
SELECT family, sum(pg_table_size(relid)), sum(pg_indexes_size(relid)),
       sum(pg_total_relation_size(relid))
FROM family GROUP BY family
"""
ROW_COUNTS = {
    "heart_rate_readings": "SELECT count(*) FROM heart_rate_readings",
    "heart_rate_minute": "SELECT count(*) FROM heart_rate_minute",
    "heart_rate_hour": "SELECT count(*) FROM heart_rate_hour",
    "heart_rate_hour_total": "SELECT count(*) FROM heart_rate_hour_total",
    "rejected_readings": "SELECT count(*) FROM rejected_readings",
}


def _say(text: str) -> None:
    print(text, flush=True)


class Compose:
    """docker-compose on docker-compose.yml plus an override that runs this checkout's image."""

    def __init__(self, workdir: Path) -> None:
        override = workdir / "compose-override.yml"
        override.write_text(
            "services:\n" + "".join(f"  {s}:\n    image: {IMAGE}\n" for s in APP_SERVICES)
        )
        self.files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(override)]
        self.env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": PROJECT,
            "COMPOSE_HTTP_TIMEOUT": "300",
            "SPARK_WORKER_CORES": str(WORKER_CORES),
            "PRODUCER_CUSTOMERS": str(CUSTOMERS),
        }

    def __call__(self, *args: str, check: bool = True, timeout: float = 900) -> str:
        result = subprocess.run(
            ["docker-compose", *self.files, *args], cwd=ROOT, env=self.env,
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise RuntimeError(f"docker-compose {' '.join(args)}: {result.stderr[-3000:]}")
        return result.stdout

    def container_state(self, service: str) -> dict:
        ids = self("ps", "-a", "-q", service).split()
        if not ids:
            return {}
        found = subprocess.run(
            ["docker", "inspect", ids[0]], capture_output=True, text=True, check=True
        )
        return json.loads(found.stdout)[0]["State"]


def _poll(what: str, check: Callable[[], object], timeout: float, interval: float = 3.0):
    started = time.monotonic()
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _ran_once(compose: Compose, service: str) -> bool:
    """A one-shot service exited: True when with 0, raises on any other code."""
    state = compose.container_state(service)
    if state.get("Status") != "exited":
        return False
    if state["ExitCode"] != 0:
        raise RuntimeError(f"{service} exited with {state['ExitCode']}")
    return True


def _healthy(compose: Compose, service: str) -> bool:
    return compose.container_state(service).get("Health", {}).get("Status") == "healthy"


def master_view() -> dict:
    """The Spark master's /json/: its workers and running applications."""
    url = f"http://127.0.0.1:{MASTER_PORT}/json/"
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def alive_workers(view: dict) -> list[dict]:
    return [w for w in view.get("workers", []) if w.get("state") == "ALIVE"]


def _cores_line(view: dict) -> str:
    workers = alive_workers(view)
    apps = [a for a in view.get("activeapps", []) if a.get("name") == "heartbeat-stream"]
    each = ", ".join(f"{w['host']} {w['cores']} (used {w['coresused']})" for w in workers)
    app = f"the job holds {apps[0]['cores']}" if apps else "the job not seen"
    return f"{len(workers)} workers, cores each: {each}; {app}"


def _secret(compose: Compose, name: str) -> str:
    text = compose("exec", "-T", "postgres", "cat", "/var/lib/heartbeat/secrets.env")
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == name:
            return value
    raise KeyError(name)


def _connect(password: str, database: str = DATABASE) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(
        host="127.0.0.1", port=PG_PORT, dbname=database, user="postgres", password=password,
        connect_timeout=10,
    )  # fmt: skip
    conn.autocommit = True
    return conn


def _scalar(conn, query: str, *params: object):
    with conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchone()[0]


def storage(conn) -> dict[str, dict[str, int]]:
    """Per relation family: rows, table bytes (heap and TOAST), index bytes, total bytes."""
    with conn.cursor() as cur:
        cur.execute(STORAGE)
        sizes = {name: (int(t), int(i), int(total)) for name, t, i, total in cur.fetchall()}
    return {
        name: {
            "rows": int(_scalar(conn, query)),
            "table_bytes": sizes.get(name, (0, 0, 0))[0],
            "index_bytes": sizes.get(name, (0, 0, 0))[1],
            "total_bytes": sizes.get(name, (0, 0, 0))[2],
        }
        for name, query in ROW_COUNTS.items()
    }


def _fresh_database(compose: Compose, password: str) -> None:
    """Drop the job's database and let `init` provision it again (roles, migrations, topics)."""
    admin = _connect(password, "postgres")
    try:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    finally:
        admin.close()
    compose("run", "--rm", "--no-deps", "-T", "init")


def _stop_job(compose: Compose) -> None:
    compose("rm", "-s", "-f", "stream-job")
    subprocess.run(
        ["docker", "volume", "rm", "-f", f"{PROJECT}_checkpoints"], capture_output=True, check=False
    )


def _window(conn) -> tuple[int, float, int, float, float]:
    """(rows, seconds from the first batch's start to the last one's end, batches, median
    batch ms, rows/s after the first batch) over the readings query's batches with input."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT input_rows, extract(epoch FROM batch_time), batch_duration_ms"
            " FROM pipeline_metrics WHERE query_name = 'readings' AND input_rows > 0"
            " ORDER BY batch_id"
        )
        batches = [(int(n), float(t), float(ms)) for n, t, ms in cur.fetchall()]
    rows = sum(n for n, _, _ in batches)
    end = max(t + ms / 1000 for _, t, ms in batches)
    seconds = end - batches[0][1]
    warm = rows / seconds
    if len(batches) > 1:
        warm = sum(n for n, _, _ in batches[1:]) / (end - batches[1][1])
    median = statistics.median(ms for _, _, ms in batches)
    return rows, seconds, len(batches), median, warm


def drain(compose: Compose, password: str, workers: int) -> dict[str, object]:
    """The stream-job service over the backlog with `workers` workers; its figures."""
    _fresh_database(compose, password)
    compose("up", "-d", "--no-deps", "--no-build", "--scale", f"spark-worker={workers}",
            "spark-worker")  # fmt: skip
    _poll(f"{workers} workers alive", lambda: len(alive_workers(master_view())) == workers, 600)
    conn = _connect(password)
    load_before = os.getloadavg()
    started = time.monotonic()
    compose("up", "-d", "--no-deps", "--no-build", "stream-job")
    views: list[dict] = []

    def drained() -> bool:
        view = master_view()
        if any(a.get("name") == "heartbeat-stream" for a in view.get("activeapps", [])):
            views.append(view)
        state = compose.container_state("stream-job")
        if state.get("Status") in {"exited", "dead"} or state.get("Restarting"):
            raise RuntimeError(f"the stream job stopped: {state}")
        done = "SELECT coalesce(sum(input_rows), 0) FROM pipeline_metrics WHERE query_name = %s"
        return _scalar(conn, done, "readings") >= BACKLOG

    try:
        _poll("the backlog to drain", drained, 1800, interval=5)
        rows, seconds, batches, median_ms, warm = _window(conn)
        sizes = storage(conn)
        log = compose("logs", "--no-color", "stream-job")
        laps = sink_batches(log)
    finally:
        conn.close()
        _stop_job(compose)
    view = views[-1] if views else {}
    return {
        "workers": workers,
        "worker_cores": [w["cores"] for w in alive_workers(view)],
        "job_cores": next(
            (a["cores"] for a in view.get("activeapps", []) if a["name"] == "heartbeat-stream"), 0
        ),
        "cores_line": _cores_line(view) if view else "the master never showed the job",
        "rows": rows, "seconds": seconds, "batches": batches, "median_batch_ms": median_ms,
        "rate": rows / seconds, "warm_rate": warm,
        "laps": laps, "lap_rates": lap_rates(laps), "storage": sizes,
        "load": [load_before[0], os.getloadavg()[0]],
        "wall_seconds": time.monotonic() - started,
    }  # fmt: skip


def sink_batches(log_text: str) -> list[dict[str, float]]:
    """Each batch with messages, from the sink's log line: its rows (valid and quarantined)
    and its laps in seconds (stage: read, classify and stage-write; commit; publish)."""
    batches = []
    for line in log_text.splitlines():
        match = _batch_times.SINK_BATCH.search(line)
        if match and int(match[2]) + int(match[3]) > 0:
            laps = dict(_batch_times.parse_laps(match[4]))
            batches.append({"rows": float(int(match[2]) + int(match[3])), **laps})
    return batches


def lap_rates(batches: list[dict[str, float]]) -> dict[str, float]:
    """Rows per second of each lap over the batches after the first (the JVM compiles the hot
    path during the first): their rows over their summed lap time."""
    warm = batches[1:] or batches
    rows = sum(b["rows"] for b in warm)
    return {
        name: rows / seconds
        for name in ("stage", "commit")
        if (seconds := sum(b.get(name, 0.0) for b in warm)) > 0
    }


def _lap_line(batches: list[dict[str, float]]) -> str:
    cells = [f"{name} {rate:,.0f} rows/s" for name, rate in lap_rates(batches).items()]
    warm = len(batches[1:] or batches)
    return f"the sink's laps over the {warm} batches after the first: {', '.join(cells)}"


def backlog_messages() -> list:
    """The published backlog again, generated here (same seed): the COPY reference's rows."""
    from heartbeat_producer.config import SimulationConfig
    from heartbeat_producer.simulator import Simulator

    start = datetime.now(UTC) - timedelta(seconds=BACKLOG / CUSTOMERS + 5)
    return Simulator(SimulationConfig(customers=CUSTOMERS, seed=11), start=start).take(BACKLOG)


def _copy_rate(password: str, messages: list) -> float:
    """COPY of the backlog's valid rows in the compose PostgreSQL: benchmarks/stream_job.py's
    reference, into the same kind of table."""
    from benchmarks.stream_job import copy_rate

    conn = _connect(password)
    try:
        return copy_rate(conn, messages)
    finally:
        conn.close()


def _host(command: str) -> None:
    subprocess.run(
        ["bash", str(ROOT / "docker" / "host.sh"), command], check=True, cwd=ROOT,
        env={**os.environ, "HEARTBEAT_COMPOSE_STATE": str(var_dir() / "compose")},
    )  # fmt: skip


def _build_image() -> None:
    extra_ca = Path(os.environ.get("COMPOSE_EXTRA_CA", "/etc/ssl/certs/ca-certificates.crt"))
    if extra_ca.is_file():  # as compose-test: the build trusts the host's CAs
        (ROOT / "docker" / "ca" / "build-extra-ca.pem").write_bytes(extra_ca.read_bytes())
    subprocess.run(
        ["docker", "build", "-q", "-t", IMAGE, "--build-arg",
         f"BASE_IMAGE={os.environ.get('BASE_IMAGE', 'debian:bookworm-slim')}", "."],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def _start(compose: Compose) -> str:
    """PostgreSQL, Kafka, init and the master up; the backlog published. The superuser's
    password."""
    compose("down", "-v", "--remove-orphans", check=False)
    compose("up", "-d", "--no-build", "init", "spark-master", timeout=1800)
    _poll("init to finish", lambda: _ran_once(compose, "init"), 1200, 5)
    _poll("the Spark master", lambda: _healthy(compose, "spark-master"), 600, 5)
    return _secret(compose, "POSTGRES_PASSWORD")


def _publish(compose: Compose) -> dict[str, int]:
    out = compose(
        "run", "--rm", "--no-deps", "-T", "-e", f"BENCH_BACKLOG={BACKLOG}",
        "-e", f"BENCH_CUSTOMERS={CUSTOMERS}", "producer", "python", "-c", PUBLISH,
        timeout=1800,
    )  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def _kafka_bytes(compose: Compose) -> int:
    return int(compose("exec", "-T", "kafka", "sh", "-c", KAFKA_LOG_BYTES).strip())


def _print_storage(sizes: dict[str, dict[str, int]], readings: int) -> None:
    for name, size in sizes.items():
        per_row = size["total_bytes"] / size["rows"] if size["rows"] else 0.0
        _say(
            f"  {name}: {size['rows']:,} rows, table {size['table_bytes']:,} B + indexes"
            f" {size['index_bytes']:,} B = {size['total_bytes']:,} B; {per_row:,.0f} B per row,"
            f" {size['total_bytes'] / readings:,.1f} B per valid reading"
        )


def run() -> None:
    workdir = var_dir() / "bench" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    workdir.mkdir(parents=True)
    _say(f"machine: {os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {workdir}")
    _host("start-daemon")
    compose = Compose(workdir)
    results: dict[str, object] = {
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "backlog": BACKLOG,
        "customers": CUSTOMERS, "worker_cores_setting": WORKER_CORES, "cpu_count": os.cpu_count(),
    }  # fmt: skip
    try:
        _host("base-image")
        _build_image()
        password = _start(compose)
        outcomes = _publish(compose)
        kafka_bytes = _kafka_bytes(compose)
        results |= {"published": outcomes, "kafka_log_bytes": kafka_bytes}
        _say(f"backlog: {BACKLOG:,} messages, {CUSTOMERS:,} customers: {outcomes}")
        _say(f"  Kafka log segments: {kafka_bytes:,} B = {kafka_bytes / BACKLOG:.1f} B per message")
        drains = []
        messages = backlog_messages()
        for workers in WORKER_COUNTS:
            copy = _copy_rate(password, messages)
            figures = drain(compose, password, workers)
            figures["copy_rate"] = copy
            drains.append(figures)
            rate, warm = float(figures["rate"]), float(figures["warm_rate"])  # type: ignore[arg-type]
            _say(f"{workers} worker(s): {figures['cores_line']}")
            _say(f"  PostgreSQL COPY just before, same database server: {copy:,.0f} rows/s")
            _say(
                f"  drain: {rate:,.0f} messages/s in {figures['batches']} batches (median"
                f" {figures['median_batch_ms']:,.0f} ms) = {rate / copy:.0%} of COPY; after the"
                f" first batch {warm:,.0f} messages/s = {warm / copy:.0%} of COPY"
            )
            _say(f"  {_lap_line(figures['laps'])}")  # type: ignore[arg-type]
            load = figures["load"]
            _say(f"  load average (1 min) at its start / end: {load[0]:.2f} / {load[1]:.2f}")  # type: ignore[index]
        results["drains"] = drains
        _say("side by side (messages/s after the first batch, COPY in the same run):")
        for figures in drains:
            warm, copy = float(figures["warm_rate"]), float(figures["copy_rate"])  # type: ignore[arg-type]
            _say(
                f"  {figures['workers']} worker(s), {figures['job_cores']} executor cores"
                f" ({'+'.join(str(c) for c in figures['worker_cores'])}): {warm:,.0f}/s,"
                f" COPY {copy:,.0f}/s, ratio {warm / copy:.0%}"
            )  # type: ignore[union-attr]
        if len(drains) > 1:
            first, last = drains[0], drains[-1]
            gain = float(last["warm_rate"]) / float(first["warm_rate"])  # type: ignore[arg-type]
            _say(f"  {last['workers']} workers / {first['workers']}: {gain:.2f}x")
        valid = int(outcomes.get("valid", 0))
        _say(f"PostgreSQL storage after the first drain ({valid:,} valid readings):")
        _print_storage(drains[0]["storage"], valid)  # type: ignore[arg-type]
    finally:
        (workdir / "spark_workers.json").write_text(json.dumps(results, indent=1))
        _say(f"figures: {workdir / 'spark_workers.json'}")
        compose("down", "-v", "--remove-orphans", "--timeout", "60", check=False)
        _host("stop-daemon")
