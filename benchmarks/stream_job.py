"""Streaming job: drain rate beside PostgreSQL's COPY and the naive consumer, end-to-end and
alert latency at 1,000 and 10,000 readings/s, Spark jobs per batch, driver peak RSS.

Every figure is measured in this one run, next to its reference, on this machine. Each part runs
its own job (spark-submit, local[2], the job's default settings) on its own topics and
checkpoint; each drain into a fresh database of its own (dropped afterwards). Stop the supervised
stream-job and producer first (`make down && make infra`): the cores are shared.

Settings (environment):
- BENCH_BASELINE_REF: a git revision (e.g. 735c2c4, the last commit before the alert rules)
  whose job drains the same topic rows in the same run, beside this checkout's, with the ratio.
  Its tree is extracted with `git archive` into var/bench/tree-<commit> (benchmarks/_job_tree.py)
  and runs its own spark-submit entry against a database made by its own migrations, with its
  own checkpoint; the live runs then run each tree's job in turn too, each into a database of its
  own. Default: unset (off): a baseline doubles the drain and live phases, and which revision is
  the interesting "before" changes with the question asked.
- BENCH_DRAIN_ROUNDS (1): drains per tree, interleaved (before, after, before, after, ...); the
  ratio is of the medians.
- BENCH_STREAM_BACKLOG (1,000,000), BENCH_NAIVE_SECONDS (30), BENCH_STREAM_LIVE_SECONDS (90,
  at least 60), BENCH_STREAM_LIVE_RATES (1000,10000; empty: no live runs).

Per batch, Spark's own phases (the query progress' durationMs, logged by the job at INFO for the
benchmark only: benchmarks/_batch_times.py) are printed beside the sink's stage and commit laps,
and the cores busy while the batches stage, while they commit and throughout
(benchmarks/_cpu_use.py): the least time the same work could take with every core busy, as a
drain rate.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import statistics
import subprocess
import threading
import time
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
from kafka import KafkaConsumer, KafkaProducer

from benchmarks import _batch_times, _cpu_use
from benchmarks._job_tree import JobTree, drop_database
from benchmarks.naive_consumer import consume as naive_consume
from heartbeat_contract import encode_reading
from heartbeat_contract.kafka_security import ADMIN, kafka_client_args
from heartbeat_contract.message import to_milliseconds
from heartbeat_ops.config import StackConfig, load, var_dir
from heartbeat_ops.programs import venv_bin
from heartbeat_producer.config import SimulationConfig
from heartbeat_producer.publisher import send_all
from heartbeat_producer.simulator import Message, Simulator
from tests.support.kafka import create_topic, delete_topics
from tests.support.sockets import free_port
from tests.support.stream_job import StreamJob, wait_for

BACKLOG = int(os.environ.get("BENCH_STREAM_BACKLOG", "1000000"))
CUSTOMERS = 1000
NAIVE_SECONDS = float(os.environ.get("BENCH_NAIVE_SECONDS", "30"))
LIVE_RATES = tuple(
    int(rate) for rate in os.environ.get("BENCH_STREAM_LIVE_RATES", "1000,10000").split(",") if rate
)
BASELINE_REF = os.environ.get("BENCH_BASELINE_REF", "")
DRAIN_ROUNDS = max(1, int(os.environ.get("BENCH_DRAIN_ROUNDS", "1")))
LIVE_SECONDS = max(60, int(os.environ.get("BENCH_STREAM_LIVE_SECONDS", "90")))
ALERT_PROBES = 20  # customers that go to 150 bpm, one second apart, during each live run
SUSTAIN = timedelta(seconds=60)  # HEARTBEAT_ALERT_SUSTAIN_SECONDS' default
POLL_SECONDS = 0.05  # how often the latency probe looks for newly committed rows
WARMUP = timedelta(seconds=15)  # the JVM compiles the hot path during a feed's first seconds


def _say(text: str) -> None:
    print(text, flush=True)


def _superuser(stack: StackConfig) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(stack.admin_dsn)
    conn.autocommit = True
    return conn


def _scalar(conn, query: str, *params: object):
    with conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchone()[0]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Topics:
    """Bench topics, deleted at the end."""

    def __init__(self, stack: StackConfig) -> None:
        self.servers = stack.kafka_bootstrap_servers
        self.names: list[str] = []

    def new(self, kind: str, partitions: int = 3) -> str:
        name = f"bench-{kind}-{uuid.uuid4().hex[:8]}"
        create_topic(self.servers, name, partitions)  # with the principals' rights on it
        self.names.append(name)
        return name

    def close(self) -> None:
        delete_topics(self.servers, *self.names)


class JobProbe:
    """What a running job shows from outside: Spark jobs per micro-batch (Spark's REST API)
    and the driver's peak RSS (/proc)."""

    def __init__(self, job: StreamJob, ui_port: int) -> None:
        self.job, self.ui = job, f"http://127.0.0.1:{ui_port}/api/v1"

    def jobs_per_batch(self) -> Counter:
        """Spark jobs per batch id; empty when the UI does not answer (a loaded machine)."""
        try:
            with urllib.request.urlopen(f"{self.ui}/applications", timeout=30) as response:
                app = json.load(response)[0]["id"]
            with urllib.request.urlopen(f"{self.ui}/applications/{app}/jobs", timeout=60) as r:
                jobs = json.load(r)
        except (OSError, ValueError, IndexError) as error:
            _say(f"  (Spark's UI did not answer: {error})")
            return Counter()
        batches = Counter()
        for job in jobs:
            for line in (job.get("description") or "").splitlines():
                if line.startswith("batch = ") and line[8:].isdigit():
                    batches[int(line[8:])] += 1
        return batches

    def peak_rss_mib(self) -> dict[str, float]:
        """VmHWM of each process in the job's process group (the JVM driver, Python)."""
        assert self.job.process is not None
        peaks: dict[str, float] = {}
        for proc, _ in _cpu_use.group_processes(self.job.process.pid):
            try:
                name = (proc / "comm").read_text().strip()
                status = (proc / "status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peaks[name] = max(peaks.get(name, 0), int(line.split()[1]) / 1024)
        return {name: kib for name, kib in peaks.items() if kib > 50}


def _start_job(
    stack, topic, workdir: Path, tree: JobTree | None = None, **overrides: str
) -> tuple[StreamJob, JobProbe]:
    """`tree`'s job (default: this checkout's) on `topic`, its checkpoint and log in `workdir`."""
    tree = tree or JobTree.current()
    port = free_port()
    job = tree.job(
        stack, topic, str(workdir / f"ck-{topic}"), workdir / f"{topic}.log",
        HEARTBEAT_TRIGGER_INTERVAL="",  # empty: the job's own defaults
        SPARK_UI_PORT=str(port), **_batch_times.progress_logging(tree.root, workdir), **overrides,
    )  # fmt: skip
    job.start()
    return job, JobProbe(job, port)


def _backlog() -> list[Message]:
    """The producer's default mix, 1,000 customers reading once a second, ending now."""
    start = datetime.now(UTC) - timedelta(seconds=BACKLOG / CUSTOMERS + 5)
    return Simulator(SimulationConfig(customers=CUSTOMERS, seed=11), start=start).take(BACKLOG)


def copy_rate(conn, messages: list[Message]) -> float:
    """The database's limit: COPY of the backlog's valid rows into a table shaped like
    heart_rate_readings (same constraints and indexes), rows per second."""
    table = f"bench_copy_{uuid.uuid4().hex[:8]}"
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    buffer = io.StringIO()
    rows = 0
    for offset, m in enumerate(messages):
        if m.outcome == "valid":
            at = epoch + timedelta(milliseconds=m.timestamp_ms)
            buffer.write(f"{m.customer_id}\t{at.isoformat()}\t{m.heart_rate}\tcopy\t0\t{offset}\n")
            rows += 1
    buffer.seek(0)
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (LIKE heart_rate_readings INCLUDING ALL)")
        try:
            started = time.monotonic()
            cur.copy_expert(
                f'COPY {table} (customer_id, "timestamp", heart_rate, kafka_topic,'
                " kafka_partition, kafka_offset) FROM STDIN",
                buffer,
            )
            return rows / (time.monotonic() - started)
        finally:
            cur.execute(f"DROP TABLE {table}")


def naive_rate(stack: StackConfig, conn, topic: str) -> float:
    table = f"bench_naive_{uuid.uuid4().hex[:8]}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (LIKE heart_rate_readings INCLUDING ALL)")
    try:
        dsn = stack.admin_dsn
        return naive_consume(kafka_client_args(stack, ADMIN), topic, dsn, table, NAIVE_SECONDS)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE {table}")


def drain(stack, topics: Topics, topic: str, workdir: Path, tree: JobTree, run: int):
    """`tree`'s job over the published backlog, into a fresh database made by its own migrations
    (dropped afterwards): messages/s from its first batch's start to its last batch's end, as
    its metrics listener recorded them."""
    stack = tree.database(stack, run)
    tree.provision(stack)
    workdir = workdir / f"drain-{tree.key}-{run}"
    workdir.mkdir()
    conn = _superuser(stack)
    alerts = topics.new("drain-alerts", partitions=1)
    load_before = os.getloadavg()[0]
    job, probe = _start_job(stack, topic, workdir, tree, KAFKA_ALERTS_TOPIC=alerts)
    assert job.process is not None
    timeline = _cpu_use.CpuTimeline(job_group=job.process.pid)
    timeline.start()
    try:
        wait_for(
            lambda: _scalar(
                conn,
                "SELECT coalesce(sum(input_rows), 0) FROM pipeline_metrics WHERE query_id = %s",
                _query_id(workdir, topic),
            ) >= BACKLOG,
            1800, "the backlog to drain", poll=1,
        )  # fmt: skip
        rows, seconds, batches, median_ms = _metrics_window(conn, _query_id(workdir, topic))
        warm_rows, warm_seconds = rows, seconds  # a backlog of one batch: no warm window
        if batches > 1:
            warm_rows, warm_seconds, *_ = _metrics_window(conn, _query_id(workdir, topic), skip=1)
        jobs = probe.jobs_per_batch()
        rss = probe.peak_rss_mib()
        # The last batch's laps are logged after its commit and publish, so after its metrics row:
        # stopped at once, the job often had not written them, and the CPU figures lost a batch.
        # (A baseline tree older than those lines never writes them: its CPU figures are None.)
        with contextlib.suppress(AssertionError):
            wait_for(lambda: _logged_batches(job.log_path) >= batches, 60,
                     "the sink's log line of every batch")  # fmt: skip
    finally:
        samples = timeline.stop()
        job.stop()
        conn.close()
        drop_database(stack)
    return {
        "rate": rows / seconds, "warm_rate": warm_rows / warm_seconds,
        "batches": batches, "median_ms": median_ms, "jobs": jobs, "rss": rss,
        "load": (load_before, os.getloadavg()[0]), "log": job.log_path,
        "cpu": _cpu_use.phase_use(job.log_path, samples),
    }  # fmt: skip


def _logged_batches(log_path: Path) -> int:
    return len(_batch_times.sink_batches(log_path.read_text(errors="replace")))


def _query_id(workdir: Path, topic: str) -> str:
    metadata = workdir / f"ck-{topic}" / "readings" / "metadata"
    wait_for(metadata.exists, 300, "the query to start")
    return json.loads(metadata.read_text())["id"]


def _metrics_window(conn, query_id: str, skip: int = 0) -> tuple[int, float, int, float]:
    """(rows, seconds from the first batch's start to the last one's end, batches, median batch
    ms) over the query's batches with input, leaving out the first `skip` of them."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT sum(input_rows), extract(epoch FROM max(batch_time + batch_duration_ms"
            " * interval '1 millisecond') - min(batch_time)), count(*),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY batch_duration_ms)"
            " FROM (SELECT * FROM pipeline_metrics WHERE query_id = %s AND input_rows > 0"
            " ORDER BY batch_id OFFSET %s) b",
            (query_id, skip),
        )
        rows, seconds, batches, median = cur.fetchone()
    return int(rows), float(seconds), int(batches), float(median)


class VisibilityProbe(threading.Thread):
    """Polls heart_rate_readings by provenance and records, for every row of the topic, how long
    after its event time a reader could first see it (committed, not merely inserted)."""

    def __init__(self, stack: StackConfig, topic: str) -> None:
        super().__init__(daemon=True)
        self.conn = _superuser(stack)
        self.topic = topic
        self.seen = {0: -1, 1: -1, 2: -1}
        self.latencies: list[float] = []
        self.steady: list[float] = []  # readings after the first WARMUP_SECONDS of the feed
        self.stopped = threading.Event()

    def run(self) -> None:
        warm_from: datetime | None = None
        with self.conn.cursor() as cur:
            while not self.stopped.is_set():
                for partition, last in self.seen.items():
                    cur.execute(
                        'SELECT kafka_offset, "timestamp" FROM heart_rate_readings WHERE'
                        " kafka_topic = %s AND kafka_partition = %s AND kafka_offset > %s",
                        (self.topic, partition, last),
                    )
                    rows = cur.fetchall()
                    now = datetime.now(UTC)
                    if rows:
                        self.seen[partition] = max(offset for offset, _ in rows)
                        warm_from = warm_from or min(at for _, at in rows) + WARMUP
                        for _, at in rows:
                            latency = (now - at).total_seconds()
                            self.latencies.append(latency)
                            if at >= warm_from:
                                self.steady.append(latency)
                self.stopped.wait(POLL_SECONDS)
        self.conn.close()


class AlertProbe(threading.Thread):
    """ALERT_PROBES customers start 150 bpm one second apart; each reading is sent at its event
    time. Alert latency: from the reading that completes the sustain window to the alert."""

    def __init__(self, stack: StackConfig, topic: str, alerts_topic: str, run_id: str) -> None:
        super().__init__(daemon=True)
        self.stack, self.topic, self.run_id = stack, topic, run_id
        self.completing: dict[str, datetime] = {}
        self.received: dict[str, datetime] = {}
        self.consumer = KafkaConsumer(
            alerts_topic, **kafka_client_args(stack, ADMIN),
            auto_offset_reset="earliest", consumer_timeout_ms=500,
        )  # fmt: skip
        self.listener = threading.Thread(target=self._listen, daemon=True)
        self.stopped = threading.Event()

    def _listen(self) -> None:
        while not self.stopped.is_set():
            for record in self.consumer:
                customer = json.loads(record.value)["customer_id"]
                self.received.setdefault(customer, datetime.now(UTC))

    def run(self) -> None:
        self.listener.start()
        producer = KafkaProducer(**kafka_client_args(self.stack, ADMIN), acks="all")
        customers = [f"probe-{self.run_id}-{i:02d}" for i in range(ALERT_PROBES)]
        first: dict[str, datetime] = {}
        began = time.monotonic()
        tick = 0
        while len(self.completing) < len(customers) and not self.stopped.is_set():
            for customer in customers[: tick + 1]:  # one more customer joins every second
                if customer in self.completing:
                    continue
                # The event time as the message carries it (milliseconds): the rule compares
                # those, so a microsecond more or less must not move the completing reading.
                now = to_milliseconds(datetime.now(UTC))
                first.setdefault(customer, now)
                key, value = encode_reading(customer, now, 150)
                producer.send(self.topic, key=key, value=value)
                if now - first[customer] >= SUSTAIN:
                    self.completing[customer] = now
            producer.flush()
            tick += 1
            time.sleep(max(0.0, began + tick - time.monotonic()))
        producer.close()

    def latencies(self) -> list[float]:
        return [
            (self.received[c] - at).total_seconds()
            for c, at in self.completing.items()
            if c in self.received
        ]

    def stop(self) -> None:
        self.stopped.set()
        self.listener.join(timeout=5)
        self.consumer.close()


def live(
    stack, topics: Topics, workdir: Path, rate: int, tree: JobTree | None = None
) -> dict[str, object]:
    """The job at default settings while the producer sends `rate` readings/s (1,000 customers)
    for LIVE_SECONDS, plus the alert probe. With a `tree`, that tree's job, into a fresh database
    made by its own migrations (dropped afterwards), as a drain does."""
    if tree is not None:
        stack = tree.database(stack, rate)
        tree.provision(stack)
    topic, alerts = topics.new(f"live{rate}"), topics.new(f"alerts{rate}", partitions=1)
    job, probe = _start_job(stack, topic, workdir, tree, KAFKA_ALERTS_TOPIC=alerts)
    visibility = VisibilityProbe(stack, topic)
    alert_probe = AlertProbe(stack, topic, alerts, uuid.uuid4().hex[:6])
    try:
        ready = workdir / f"ck-{topic}" / "readings" / "commits" / "0"
        wait_for(ready.exists, 300, "the job's first (empty) batch")
        visibility.start()
        alert_probe.start()
        ledger = workdir / f"{topic}.ledger.json"
        subprocess.run(
            [
                venv_bin("heartbeat-producer"), "--topic", topic, "--customers", str(CUSTOMERS),
                "--rate", str(rate), "--duration", str(LIVE_SECONDS), "--seed", "5",
                "--log-level", "WARNING", "--ledger", str(ledger),
            ],
            check=True,
        )  # fmt: skip
        sent = json.loads(ledger.read_text())["sent"]
        alert_probe.join(timeout=120)
        expected = sent - int(sent * 0.005 * 1.5) + len(alert_probe.completing)  # lower bound
        wait_for(lambda: len(visibility.latencies) >= expected, 120, "the last readings")
        wait_for(lambda: len(alert_probe.received) >= len(alert_probe.completing), 60, "the alerts")
        jobs = probe.jobs_per_batch()
        rss = probe.peak_rss_mib()
    finally:
        visibility.stopped.set()
        alert_probe.stop()
        job.stop()
        if tree is not None:
            visibility.join(timeout=10)  # its connection closed before the drop
            drop_database(stack)
    return {
        "latency": visibility.latencies, "steady": visibility.steady,
        "alerts": alert_probe.latencies(), "jobs": jobs, "rss": rss, "sent": sent,
        "log": job.log_path,
    }  # fmt: skip


def _percentiles(values: list[float]) -> str:
    return (
        f"p50 {_percentile(values, 0.5):.2f} s, p95 {_percentile(values, 0.95):.2f} s,"
        f" p99 {_percentile(values, 0.99):.2f} s, max {max(values):.2f} s"
    )


def _jobs_line(jobs: Counter) -> str:
    counts = [n for batch, n in jobs.items() if batch > 0]  # batch 0 also plans the source
    if not counts:
        return "no batches seen"
    return f"median {statistics.median(counts):.0f}, max {max(counts)} over {len(counts)} batches"


def _rss_line(rss: dict[str, float]) -> str:
    return ", ".join(f"{name} {mib:,.0f} MiB" for name, mib in sorted(rss.items()))


def _print_drain(result: dict[str, object], copy: float, naive: float) -> None:
    rate, warm = float(result["rate"]), float(result["warm_rate"])  # type: ignore[arg-type]
    before, after = result["load"]  # type: ignore[misc]
    _say(
        f"  streaming job: {rate:,.0f} messages/s in {result['batches']} batches"
        f" (median {result['median_ms']:,.0f} ms) = {rate / copy:.0%} of COPY,"
        f" {rate / naive:.1f}x the naive consumer"
    )
    _say(
        f"  after its first batch (the JVM compiling the hot path): {warm:,.0f} messages/s ="
        f" {warm / copy:.0%} of COPY, {warm / naive:.1f}x the naive consumer"
    )
    _say(f"  Spark jobs per batch: {_jobs_line(result['jobs'])}")  # type: ignore[arg-type]
    _say(f"  driver peak RSS: {_rss_line(result['rss'])}")  # type: ignore[arg-type]
    for line in _batch_times.summary(Path(str(result["log"]))):
        _say(f"  {line}")
    for line in _cpu_use.summary(result["cpu"], copy, os.cpu_count() or 1):  # type: ignore[arg-type]
        _say(f"  {line}")
    _say(f"  load average (1 min) at its start / end: {before:.2f} / {after:.2f}")


def _print_ratio(before: str, after: str, warm_rates: dict[str, list[float]]) -> None:
    """The after/before ratio of the median drains after their first batch."""
    b, a = statistics.median(warm_rates[before]), statistics.median(warm_rates[after])
    _say(
        f"same rows, same run, after the first batch (median of {len(warm_rates[after])}):"
        f" {before} {b:,.0f} messages/s, {after} {a:,.0f} messages/s:"
        f" after/before = {a / b:.2f} (drain {(a - b) / b:+.0%})"
    )


def run() -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)  # selector timing warnings under load
    stack = load()
    conn = _superuser(stack)
    topics = Topics(stack)
    _say(f"machine: {os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    try:
        # The jobs' logs and checkpoints are kept for a look afterwards.
        workdir = var_dir() / "bench" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        workdir.mkdir(parents=True)
        _say(f"job logs under {workdir}")
        _say(f"backlog: {BACKLOG:,} messages, the producer's default mix, 1,000 customers")
        messages = _backlog()
        copy = copy_rate(conn, messages)
        _say(f"  PostgreSQL COPY into a heart_rate_readings-shaped table: {copy:,.0f} rows/s")
        topic = topics.new("drain")
        send_all(messages, bootstrap_servers=stack.kafka_bootstrap_servers, topic=topic,
                 timeout=900)  # fmt: skip
        outcomes = Counter(m.outcome for m in messages)
        del messages
        _say(f"  published: {dict(outcomes)}")
        naive = naive_rate(stack, conn, topic)
        _say(f"  naive consumer (one autocommit INSERT per message): {naive:,.0f} messages/s")
        trees = [JobTree.current()]
        if BASELINE_REF:
            trees.insert(0, JobTree.of_revision(BASELINE_REF))  # before, after, before, ...
        warm_rates: dict[str, list[float]] = {tree.label: [] for tree in trees}
        for run_number in range(1, DRAIN_ROUNDS + 1):
            for tree in trees:
                result = drain(stack, topics, topic, workdir, tree, run_number)
                warm_rates[tree.label].append(float(result["warm_rate"]))
                _say(f"{tree.label}, drain {run_number} of {DRAIN_ROUNDS}:")
                _print_drain(result, copy, naive)
        if BASELINE_REF:
            _print_ratio(trees[0].label, trees[1].label, warm_rates)
        # With a baseline, each rate runs each tree's job in turn (before, after), each into a
        # database of its own; else this checkout's job into the stack's database.
        live_trees: list[JobTree | None] = [*trees] if BASELINE_REF else [None]
        for live_rate, tree in ((rate, tree) for rate in LIVE_RATES for tree in live_trees):
            figures = live(stack, topics, workdir, live_rate, tree)
            latency, steady, alerts = figures["latency"], figures["steady"], figures["alerts"]
            _say(
                f"{tree.label + ': ' if tree else ''}"
                f"live {live_rate:,} readings/s for {LIVE_SECONDS}s ({figures['sent']:,}"
                f" sent), event time to committed row, polled every {POLL_SECONDS * 1000:.0f}"
                f" ms: {_percentiles(latency)}"
            )
            _say(f"  after the first {WARMUP.seconds} s: {_percentiles(steady)}")
            _say(
                f"  alert latency ({len(alerts)} episodes), completing reading to the message"
                f" on the alerts topic: p50 {_percentile(alerts, 0.5):.2f} s,"
                f" p99 {_percentile(alerts, 0.99):.2f} s, max {max(alerts):.2f} s"
            )
            _say(f"  Spark jobs per batch: {_jobs_line(figures['jobs'])}")
            _say(f"  driver peak RSS: {_rss_line(figures['rss'])}")
            for line in _batch_times.summary(Path(str(figures["log"]))):
                _say(f"  {line}")
    finally:
        topics.close()
        conn.close()
