"""Superset dashboard: each chart's query time on >= 5 million readings, and Superset's memory.

Generates BENCH_SUPERSET_READINGS readings (default 5,000,000) with generate_series under the
scratch topic `bench-superset`, 1,000 customers spread over the last 50 minutes (inside the
dashboard's default "last hour"), the matching one-minute rollups (with their bpm_bins, as the
streaming job computes them: what the distribution chart reads through heart_rate_minute_bins),
and some alerts, quarantined messages and pipeline metrics; then, for every chart of the
dashboard:

- `api`: POST /api/v1/chart/data with the chart's query, as the dashboard sends it (Superset's
  own overhead included), median and max of BENCH_SUPERSET_REPEATS runs;
- `db`: the same SQL (Superset's result_type=query) run directly as heartbeat_reader;

for all customers and for one customer (the Customer filter), then one dashboard refresh (all
charts at once, as the browser does) and the RSS of the gunicorn master and workers. Every
generated row is deleted at the end. BENCH_SUPERSET_COLD_START=1 also restarts Superset and times
start -> /health -> a rendered dashboard in headless Chromium.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2

from heartbeat_ops import supervisor
from heartbeat_ops.config import load, read_env_file, secrets_file, var_dir
from heartbeat_stream.sinks.rollups import merge_sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "superset"))
from superset_api import (  # noqa: E402
    LAST_HOUR,
    SupersetClient,
    build_query_context,
    wait_healthy,
)

READINGS = int(os.environ.get("BENCH_SUPERSET_READINGS", "5000000"))
CUSTOMERS = 1000
REPEATS = int(os.environ.get("BENCH_SUPERSET_REPEATS", "5"))
TAG = "bench-superset"
SPAN_SECONDS = 50 * 60
NOT_PER_CUSTOMER = {"rejected_readings", "pipeline_metrics"}


def _say(message: str) -> None:
    print(message, flush=True)


def _cleanup(cur) -> None:
    cur.execute("DELETE FROM heart_rate_readings WHERE kafka_topic = %s", (TAG,))
    cur.execute("DELETE FROM rejected_readings WHERE kafka_topic = %s", (TAG,))
    cur.execute("DELETE FROM pipeline_metrics WHERE query_name = %s", (TAG,))
    cur.execute("DELETE FROM heart_rate_minute WHERE customer_id LIKE %s", (TAG + "-%",))
    cur.execute("DELETE FROM heart_rate_alerts WHERE customer_id LIKE %s", (TAG + "-%",))


def _generate(cur) -> None:
    started = time.monotonic()
    # A bell-ish heart rate (sum of three uniforms, 50..138 bpm), evenly spread in time.
    cur.execute(
        """
        INSERT INTO heart_rate_readings (customer_id, "timestamp", heart_rate,
                                         kafka_topic, kafka_partition, kafka_offset)
        SELECT %(tag)s || '-C' || lpad((g %% %(customers)s)::text, 4, '0'),
               now() - make_interval(secs => %(span)s)
                     + make_interval(secs => (g::double precision / %(readings)s) * %(span)s),
               50 + (g %% 37) + ((g / 7) %% 41) + ((g / 3) %% 13),
               %(tag)s, (g %% 3)::int, g
        FROM generate_series(0, %(readings)s - 1) AS g
        """,
        {"tag": TAG, "customers": CUSTOMERS, "span": SPAN_SECONDS, "readings": READINGS},
    )
    _say(f"  {cur.rowcount:,} readings in {time.monotonic() - started:.1f}s")
    started = time.monotonic()
    cur.execute(
        f"""
        WITH inserted AS (
            SELECT customer_id, "timestamp", heart_rate FROM heart_rate_readings
            WHERE kafka_topic = %s
        ) {merge_sql("inserted")}
        """,
        (TAG,),
    )
    _say(f"  {cur.rowcount:,} one-minute rollups in {time.monotonic() - started:.1f}s")
    # The bins must say what the readings say, or the distribution's timing means nothing.
    cur.execute(
        "SELECT (heart_rate / 5) * 5, count(*) FROM heart_rate_readings WHERE kafka_topic = %s"
        " GROUP BY 1",
        (TAG,),
    )
    raw = dict(cur.fetchall())
    cur.execute(
        "SELECT bpm_bin, sum(readings) FROM heart_rate_minute_bins WHERE customer_id LIKE %s"
        " GROUP BY 1",
        (TAG + "-%",),
    )
    binned = dict(cur.fetchall())
    if binned != raw:
        raise RuntimeError(f"bpm_bins disagree with the readings: {binned} != {raw}")
    cur.execute(
        """
        INSERT INTO heart_rate_alerts (sink_id, customer_id, kind, started_at, ended_at,
                                       extreme_bpm, readings, last_reading_at)
        SELECT %(tag)s, %(tag)s || '-C' || lpad((a %% %(customers)s)::text, 4, '0'),
               CASE WHEN a %% 2 = 0 THEN 'tachycardia' ELSE 'bradycardia' END,
               now() - make_interval(secs => a), CASE WHEN a %% 5 = 0 THEN NULL
               ELSE now() - make_interval(secs => a) + interval '2 minutes' END,
               CASE WHEN a %% 2 = 0 THEN 170 ELSE 42 END, 20,
               now() - make_interval(secs => a) + interval '2 minutes'
        FROM generate_series(1, 3000) AS a
        """,
        {"tag": TAG, "customers": CUSTOMERS},
    )
    cur.execute(
        """
        INSERT INTO rejected_readings (raw_value, reason, detail, kafka_topic, kafka_partition,
                                       kafka_offset, ingested_at)
        SELECT '{"bench": ' || r || '}',
               (ARRAY['malformed_json', 'missing_field', 'invalid_type', 'invalid_timestamp',
                      'out_of_range'])[1 + r %% 5],
               'benchmark row', %(tag)s, r %% 3, r,
               now() - make_interval(secs => (r %% %(span)s))
        FROM generate_series(1, 50000) AS r
        """,
        {"tag": TAG, "span": SPAN_SECONDS},
    )
    cur.execute(
        """
        INSERT INTO pipeline_metrics (query_id, query_name, batch_id, run_id, batch_time,
                                      input_rows, input_rows_per_second,
                                      processed_rows_per_second, batch_duration_ms, kafka_lag)
        SELECT %(tag)s, %(tag)s, b, %(tag)s, now() - make_interval(secs => %(span)s - b), 1500,
               1500.0, 1500.0 + (b %% 300), 100 + (b %% 50), b %% 1000
        FROM generate_series(0, %(span)s - 1) AS b
        """,
        {"tag": TAG, "span": SPAN_SECONDS},
    )


def _timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def _gunicorn_rss() -> dict[str, float]:
    """RSS (MiB) of Superset's gunicorn master (the supervised pid) and each worker."""
    pid_text = supervisor.ctl("pid", "superset").stdout.strip()
    if not pid_text.isdigit() or pid_text == "0":
        return {}
    master = int(pid_text)

    def rss(pid: int) -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    figures = {"master": rss(master)}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            figures[f"worker {stat.parent.name}"] = rss(int(stat.parent.name))
    return figures


def _ensure_superset(url: str) -> None:
    if supervisor.states().get("superset") != "RUNNING":
        supervisor.ctl("start", "superset")
    wait_healthy(url, timeout=300)


def _cold_start(url: str, username: str, password: str) -> None:
    """Stop Superset, then time start -> /health -> every chart rendered in headless Chromium."""
    supervisor.ctl("stop", "superset")
    started = time.monotonic()
    supervisor.ctl("start", "superset")
    wait_healthy(url, timeout=300)
    healthy = time.monotonic() - started
    browser = ROOT / "tests" / "superset" / "browser"
    subprocess.run(["bash", str(browser / "install.sh")], check=True, capture_output=True)
    result = subprocess.run(
        ["node", str(browser / "dashboard.mjs")],
        capture_output=True,
        text=True,
        cwd=browser,
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(var_dir()),
            "SUPERSET_URL": url,
            "SUPERSET_ADMIN_USERNAME": username,
            "SUPERSET_ADMIN_PASSWORD": password,
            "SCREENSHOT": str(var_dir() / "screenshots" / "dashboard-bench.png"),
            "TIMEOUT_MS": "180000",
        },
    )
    report = json.loads(result.stdout)
    rendered = time.monotonic() - started
    _say(
        f"cold start: supervisorctl start -> /health {healthy:.1f}s; -> every chart rendered "
        f"{rendered:.1f}s (browser: login {report['timings_ms'].get('logged_in', 0) / 1000:.1f}s, "
        f"dashboard {(report['timings_ms'].get('charts_rendered', 0) - report['timings_ms'].get('dashboard_requested', 0)) / 1000:.1f}s); "  # noqa: E501
        f"ok={report['ok']}"
    )


def run() -> None:
    config = load()
    stored = read_env_file(secrets_file())
    url = f"http://localhost:{config.superset_port}"
    username = os.environ.get("SUPERSET_ADMIN_USERNAME", "admin")
    password = os.environ.get("SUPERSET_ADMIN_PASSWORD") or stored["SUPERSET_ADMIN_PASSWORD"]
    superuser = config.dsn(user=config.pg_superuser, password=config.pg_superuser_password)

    _ensure_superset(url)
    if os.environ.get("BENCH_SUPERSET_COLD_START") == "1":
        _cold_start(url, username, password)
    _say(f"Superset RSS idle (MiB): {_fmt_rss(_gunicorn_rss())}")

    admin = psycopg2.connect(superuser)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            _cleanup(cur)  # a previous run that died
            _say(f"generating {READINGS:,} readings for {CUSTOMERS:,} customers over 50 minutes")
            _generate(cur)
            started = time.monotonic()
            for table in ("heart_rate_readings", "heart_rate_minute", "heart_rate_alerts",
                          "rejected_readings", "pipeline_metrics"):  # fmt: skip
                cur.execute(f"VACUUM ANALYZE {table}")
            _say(f"  VACUUM ANALYZE in {time.monotonic() - started:.1f}s")
            cur.execute("SELECT count(*) FROM heart_rate_readings")
            _say(f"  heart_rate_readings now holds {cur.fetchone()[0]:,} rows in all")
        _measure(url, username, password, config.reader_dsn)
    finally:
        started = time.monotonic()
        with admin.cursor() as cur:
            _cleanup(cur)
            cur.execute("VACUUM heart_rate_readings")
        admin.close()
        _say(f"cleaned up the benchmark rows in {time.monotonic() - started:.1f}s")


def _fmt_rss(figures: dict[str, float]) -> str:
    if not figures:
        return "superset not running"
    workers = [v for k, v in figures.items() if k.startswith("worker")]
    return (
        f"master {figures['master']:.0f}, workers "
        + ", ".join(f"{v:.0f}" for v in workers)
        + f"; total {sum(figures.values()):.0f}"
    )


def _measure(url: str, username: str, password: str, reader_dsn: str) -> None:
    client = SupersetClient(url, username, password).login()
    charts = client.dashboard_charts()
    datasets = {
        d["id"]: d["table_name"]
        for d in client.get("/api/v1/dashboard/heart-rate-monitoring/datasets")["result"]
    }
    one_customer = [f"{TAG}-C0042"]
    reader = psycopg2.connect(reader_dsn)
    reader.autocommit = True
    _say(
        f"\nper chart, {REPEATS} runs each, time range = last hour; "
        "api = POST /api/v1/chart/data, db = the same SQL as heartbeat_reader (ms)"
    )
    _say(f"{'chart':<38} {'table':<22} {'filter':<9} {'api med':>8} {'api max':>8} "
         f"{'db med':>8} {'rows':>6}")  # fmt: skip
    contexts = []
    for chart in sorted(charts, key=lambda c: c["id"]):
        table = datasets[int(chart["form_data"]["datasource"].split("__")[0])]
        variants = [("all", None)]
        if table not in NOT_PER_CUSTOMER:
            variants.append(("customer", one_customer))
        for label, customers in variants:
            body = build_query_context(chart, time_range=LAST_HOUR, customers=customers)
            if label == "all":
                contexts.append(body)
            api_times, rows = [], 0
            for _ in range(REPEATS):
                elapsed, answer = _timed(lambda body=body: client.chart_data(body))
                result = answer["result"][0]
                if result.get("error"):
                    raise RuntimeError(f"{chart['slice_name']}: {result['error']}")
                rows = result["rowcount"]
                api_times.append(elapsed)
            sql = client.chart_data({**body, "result_type": "query"})["result"][0]["query"]
            db_times = []
            with reader.cursor() as cur:
                for _ in range(REPEATS):
                    elapsed, _ = _timed(lambda cur=cur, sql=sql: (cur.execute(sql), cur.fetchall()))
                    db_times.append(elapsed)
            _say(
                f"{chart['slice_name'][:38]:<38} {table:<22} {label:<9} "
                f"{statistics.median(api_times):>8.0f} {max(api_times):>8.0f} "
                f"{statistics.median(db_times):>8.1f} {rows:>6}"
            )
    reader.close()

    # One refresh of the whole dashboard: every chart's query at once, as the browser sends them.
    refreshes = []
    for _ in range(REPEATS):
        with ThreadPoolExecutor(max_workers=len(contexts)) as pool:
            elapsed, _ = _timed(lambda: list(pool.map(client.chart_data, contexts)))
        refreshes.append(elapsed)
    _say(
        f"\nwhole-dashboard refresh ({len(contexts)} charts in parallel): median "
        f"{statistics.median(refreshes):.0f} ms, max {max(refreshes):.0f} ms"
    )
    _say(f"Superset RSS after the queries (MiB): {_fmt_rss(_gunicorn_rss())}")
