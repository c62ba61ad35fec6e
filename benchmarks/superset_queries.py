"""Superset dashboards: each chart's query p50/p95 and whole-dashboard render time, on 10M readings.

Loads BENCH_SUPERSET_READINGS readings (default 10,000,000) for 1,000 customers over
BENCH_SUPERSET_DAYS days (30) with the history loader (`heartbeat_ops.history`: the producer's
physiology, rollups and episodes as the job computes them, sensor glitches quarantined), under
the tag `bench-superset`, plus a pipeline_metrics row per second of the last 50 minutes. Then,
for every chart of each dashboard, for the last hour (the default) and the last 30 days, for all
customers and for one:

- `p50`/`p95`: POST /api/v1/chart/data with the chart's query and `force` (the cache bypassed:
  what the query itself costs, Superset's overhead included), BENCH_SUPERSET_REPEATS runs (3
  for a query slower than 1.5 s, whose p95 is then its slowest);
- `cached`: the median of the same request without `force`, as a dashboard's first load and
  (with DASHBOARD_AUTO_REFRESH_MODE = "fetch") its refreshes ask;
- `db`: the same SQL (Superset's result_type=query) run directly as heartbeat_reader;

beside the target (200 ms) and a reference measured in the same run: Superset's floor, a
chart-data request whose query returns nothing. Last, each dashboard rendered in headless
Chromium (browser/dashboard.mjs: login excluded, from navigation to every chart drawn), median of
BENCH_SUPERSET_RENDERS runs, beside its 3 s target and the CPU seconds Chromium's own processes
used in that first visit (what the browser alone asks of the cores), as the admin and as a
viewer (an account of `heartbeat-ops superset add-user --role viewer`, made for the run and
removed after: what a nurse on call opens; Superset asks less for an account that cannot drill
or edit).
BENCH_SUPERSET_AS=admin measures the admin only. The load average is printed with the figures.

The loaded rows are deleted at the end unless BENCH_SUPERSET_KEEP=1; a kept load (which then
ends BENCH_SUPERSET_AHEAD_HOURS, 3, ahead of now so that "last hour" stays full while it is
reused) is reused by the next run. BENCH_SUPERSET_DASHBOARDS (comma-separated slugs) measures
only those. BENCH_SUPERSET_COLD_START=1 also restarts Superset and times start -> /health -> a
rendered dashboard.

BENCH_SUPERSET_LIVE=1 renders the dashboards twice: quiet (the stream job and the producer
stopped), then with the whole stack running (`stream-job` and `producer` started under
supervisord, and a micro-batch committed in the last BENCH_SUPERSET_LIVE_FRESH_SECONDS, 30,
before the first render; a warning is printed instead when none is within
BENCH_SUPERSET_LIVE_START_TIMEOUT, 300), which is what a user sees; each figure is printed
beside the quiet one, and the programs are put back as they were. Needs the whole stack
(`make up`). BENCH_SUPERSET_SKIP_QUERIES=1 skips the per-chart timings (renders only). Smallest
run: BENCH_SUPERSET_SKIP_QUERIES=1 BENCH_SUPERSET_READINGS=100000 BENCH_SUPERSET_DAYS=1
BENCH_SUPERSET_REPEATS=2 BENCH_SUPERSET_RENDERS=1 BENCH_SUPERSET_LIVE=1.
"""

from __future__ import annotations

import itertools
import os
import secrets
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2

from heartbeat_ops import accounts, history, supervisor
from heartbeat_ops.config import load, read_env_file, secrets_file, var_dir
from tests.superset.superset_api import (
    LAST_HOUR,
    SupersetClient,
    build_query_context,
    open_in_browser,
    wait_healthy,
)

READINGS = int(os.environ.get("BENCH_SUPERSET_READINGS", "10000000"))
DAYS = float(os.environ.get("BENCH_SUPERSET_DAYS", "30"))
CUSTOMERS = 1000
REPEATS = int(os.environ.get("BENCH_SUPERSET_REPEATS", "20"))
RENDERS = int(os.environ.get("BENCH_SUPERSET_RENDERS", "3"))
KEEP = os.environ.get("BENCH_SUPERSET_KEEP") == "1"
AHEAD_HOURS = float(os.environ.get("BENCH_SUPERSET_AHEAD_HOURS", "3"))
TAG = "bench-superset"
PREFIX = f"{TAG}-C"
ONE_CUSTOMER = f"{PREFIX}0042"
METRICS_SECONDS = 50 * 60
NOT_PER_CUSTOMER = {"rejected_readings", "rejected_readings_latest", "pipeline_metrics"}
LAST_30_DAYS = 'DATEADD(DATETIME("now"), -30, day) : now'
RANGES = {"1 hour": LAST_HOUR, "30 days": LAST_30_DAYS}
EMPTY_RANGE = 'DATEADD(DATETIME("now"), 1, day) : DATEADD(DATETIME("now"), 2, day)'
DASHBOARDS = ("heart-rate-monitoring", "customer-detail", "pipeline-operations")
MAIN_DASHBOARD, CUSTOMER_DASHBOARD, OPERATIONS_DASHBOARD = DASHBOARDS


def _customer_filters(slug: str) -> list[tuple[str, str]]:
    """(label, customer) for each Customer filter setting a dashboard is measured with: the customer
    dashboard always shows one customer, Pipeline Operations has no Customer filter."""
    if slug == CUSTOMER_DASHBOARD:
        return [("customer", ONE_CUSTOMER)]
    if slug == OPERATIONS_DASHBOARD:
        return [("all", "")]
    return [("all", ""), ("customer", ONE_CUSTOMER)]


QUERY_TARGET_MS, RENDER_TARGET_S = 200, 3.0
SLOW_MS = 1500
LIVE = os.environ.get("BENCH_SUPERSET_LIVE") == "1"
LIVE_PROGRAMS = ("stream-job", "producer")
LIVE_FRESH_SECONDS = float(os.environ.get("BENCH_SUPERSET_LIVE_FRESH_SECONDS", "30"))
LIVE_START_TIMEOUT = float(os.environ.get("BENCH_SUPERSET_LIVE_START_TIMEOUT", "300"))
QUERIES = os.environ.get("BENCH_SUPERSET_SKIP_QUERIES") != "1"
AS_VIEWER = os.environ.get("BENCH_SUPERSET_AS", "admin,viewer") != "admin"
VIEWER = f"{TAG}-viewer"

Account = tuple[str, str, str]  # (who, username, password)


def _say(message: str) -> None:
    print(message, flush=True)


def _load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[94]


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def _cleanup(conn) -> None:
    started = time.monotonic()
    deleted = history.delete(conn, TAG)
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM pipeline_metrics WHERE query_id = %s", (TAG,))
    _say(f"deleted {deleted:,} benchmark readings in {time.monotonic() - started:.0f}s")


def _loaded(conn) -> int:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM heart_rate_readings WHERE kafka_topic = %s", (TAG,))
        return cur.fetchone()[0]


def _generate(conn) -> None:
    end = datetime.now(UTC).replace(microsecond=0)
    if KEEP:
        end += timedelta(hours=AHEAD_HOURS)
    plan = history.HistoryPlan.for_readings(
        READINGS, CUSTOMERS, DAYS, end=end, tag=TAG, customer_prefix=PREFIX
    )
    _say(
        f"loading {plan.messages:,} messages: {CUSTOMERS:,} customers, one every "
        f"{plan.interval_seconds:.0f} s each, {DAYS:g} days to {end:%Y-%m-%d %H:%M} UTC"
    )
    summary = history.load(conn, plan)
    _say(
        f"  {summary.readings:,} readings, {summary.rejected:,} quarantined, {summary.minutes:,}"
        f" minute rollups merged, {summary.episodes:,} episodes in {summary.seconds:.0f}s"
    )
    with conn, conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO pipeline_metrics (query_id, query_name, batch_id, run_id, batch_time,
                                          input_rows, input_rows_per_second,
                                          processed_rows_per_second, batch_duration_ms, kafka_lag)
            SELECT %(tag)s, 'readings', b, %(tag)s, now() - make_interval(secs => %(span)s - b),
                   1500, 1500.0, 1500.0 + (b %% 300), 100 + (b %% 50), b %% 1000
            FROM generate_series(0, %(span)s - 1) AS b
            """,
            {"tag": TAG, "span": METRICS_SECONDS},
        )


def _vacuum(conn) -> None:
    started = time.monotonic()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname LIKE 'heart%%'"
        )
        tables = [name for (name,) in cur.fetchall()] + ["rejected_readings", "pipeline_metrics"]
        for table in tables:
            cur.execute(f'VACUUM ANALYZE "{table}"')
    conn.autocommit = False
    _say(f"  VACUUM ANALYZE in {time.monotonic() - started:.0f}s")


def _dataset_tables(client: SupersetClient, slug: str) -> dict[int, str]:
    datasets = client.get(f"/api/v1/dashboard/{slug}/datasets")["result"]
    return {d["id"]: d["table_name"] for d in datasets}


def _chart_rows(client: SupersetClient, reader, slug: str) -> None:
    charts = sorted(client.dashboard_charts(slug), key=lambda c: c["id"])
    tables = _dataset_tables(client, slug)
    _say(
        f"\n{slug}: per chart, {REPEATS} forced runs (p50/p95, ms), cached median, the same SQL"
        f" as heartbeat_reader (db, ms); target p95 <= {QUERY_TARGET_MS} ms"
    )
    _say(
        f"{'chart':<40} {'range':<8} {'filter':<9} {'p50':>6} {'p95':>6} {'cached':>7} "
        f"{'db':>7} {'rows':>6}"
    )
    for chart in charts:
        table = tables[int(chart["form_data"]["datasource"].split("__")[0])]
        variants = [
            (label, [customer] if customer else None)
            for label, customer in _customer_filters(slug)
            # every chart of the customer dashboard is measured for its one customer
            if slug == CUSTOMER_DASHBOARD or not (customer and table in NOT_PER_CUSTOMER)
        ]
        for range_label, time_range in RANGES.items():
            for label, customers in variants:
                body = build_query_context(chart, time_range=time_range, customers=customers)
                forced, rows = [], 0
                first, _ = _timed(lambda body=body: client.chart_data(body))
                # A query of seconds is timed 3 times (p95 is then the max), or a run takes hours.
                repeats = REPEATS if first < SLOW_MS else 3
                for _ in range(repeats):
                    elapsed, answer = _timed(lambda body=body: client.chart_data(body))
                    result = answer["result"][0]
                    if result.get("error"):
                        raise RuntimeError(f"{chart['slice_name']}: {result['error']}")
                    rows = result["rowcount"]
                    forced.append(elapsed)
                cached_body = {**body, "force": False}
                client.chart_data(cached_body)
                cached = [
                    _timed(lambda cached_body=cached_body: client.chart_data(cached_body))[0]
                    for _ in range(5 if first < SLOW_MS else 1)
                ]
                sql = client.chart_data({**body, "result_type": "query"})["result"][0]["query"]
                with reader.cursor() as cur:
                    db = [
                        _timed(lambda cur=cur, sql=sql: (cur.execute(sql), cur.fetchall()))[0]
                        for _ in range(min(repeats, 5))
                    ]
                _say(
                    f"{chart['slice_name'][:40]:<40} {range_label:<8} {label:<9} "
                    f"{statistics.median(forced):>6.0f} {_p95(forced):>6.0f} "
                    f"{statistics.median(cached):>7.0f} {statistics.median(db):>7.1f} {rows:>6}"
                )


def _reference(client: SupersetClient) -> None:
    """Superset's floor: a chart-data request of the main dashboard whose query finds nothing."""
    chart = next(
        c for c in client.dashboard_charts(MAIN_DASHBOARD) if c["slice_name"] == "Total readings"
    )
    body = build_query_context(chart, time_range=EMPTY_RANGE)
    times = [_timed(lambda: client.chart_data(body))[0] for _ in range(REPEATS)]
    _say(
        f"reference, a chart-data request that finds no row: p50 {statistics.median(times):.0f}"
        f" ms, p95 {_p95(times):.0f} ms (load average {_load_average()})"
    )


Renders = dict[tuple[str, str, str, str], tuple[float, float]]


def _renders(
    url: str,
    accounts: list[Account],
    slugs: list[str],
    *,
    title: str = "",
    quiet: Renders | None = None,
) -> Renders:
    """Each account x dashboard x range x filter: the median first visit and revisit (s), printed
    (beside `quiet`'s figures when given)."""
    _say(
        f"\nwhole dashboard in headless Chromium{title}, navigation -> every chart drawn, median "
        f"of {RENDERS} (target {RENDER_TARGET_S:.0f} s)"
    )
    screenshots = var_dir() / "screenshots"
    figures: Renders = {}
    for (who, username, password), slug in itertools.product(accounts, slugs):
        variants = _customer_filters(slug)
        for range_label, time_range in (("1 hour", ""), ("30 days", "Last month")):
            for label, customer in variants:
                seconds, revisits, cpu = [], [], []
                for _ in range(RENDERS):
                    report = open_in_browser(
                        url,
                        username,
                        password,
                        screenshots / f"bench-{slug}.png",
                        slug=slug,
                        customer=customer,
                        time_range=time_range,
                        revisit=True,
                        home=var_dir(),
                    )
                    if not report["ok"]:
                        raise RuntimeError(f"{slug}: {report['problems']}")
                    timings = report["timings_ms"]
                    seconds.append(
                        (timings["charts_rendered"] - timings["dashboard_requested"]) / 1000
                    )
                    revisits.append(
                        (timings["revisit_rendered"] - timings["revisit_requested"]) / 1000
                    )
                    cpu.append(report.get("browser_cpu_s", {}).get("first_visit"))
                runs = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(seconds, revisits, strict=True))
                key = (who, slug, range_label, label)
                figures[key] = (statistics.median(seconds), statistics.median(revisits))
                beside = ""
                if quiet and key in quiet:
                    beside = f" [quiet: {quiet[key][0]:5.2f} s, again {quiet[key][1]:5.2f} s]"
                known = [c for c in cpu if c is not None]
                browser = f"{statistics.median(known):4.2f} s" if known else "n/a"
                _say(
                    f"{who:<7} {slug:<22} {range_label:<8} {label:<9} first visit "
                    f"{figures[key][0]:5.2f} s (Chromium's own CPU in it {browser}), again "
                    f"(browser cache warm) {figures[key][1]:5.2f} s{beside} (runs: {runs}; load"
                    f" average {_load_average()})"
                )
    return figures


def _last_batch_age(superuser_dsn: str) -> float | None:
    """Seconds since the stream job's newest micro-batch (pipeline_metrics), None if none."""
    with psycopg2.connect(superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT extract(epoch FROM now() - max(batch_time)) FROM pipeline_metrics"
            " WHERE query_name = 'readings' AND query_id IS DISTINCT FROM %s",
            (TAG,),
        )
        (age,) = cur.fetchone()
    return None if age is None else float(age)


def _set_programs(wanted: dict[str, bool]) -> None:
    """Start or stop supervisord programs so that each is running as `wanted` says."""
    states = supervisor.states()
    for name, running in wanted.items():
        if running and states.get(name) != "RUNNING":
            supervisor.ctl("start", name)
        elif not running and states.get(name) == "RUNNING":
            supervisor.ctl("stop", name)


def _wait_live(superuser_dsn: str) -> str:
    """Until the job commits micro-batches of the producer's readings: how long that took, or
    a warning when it did not within BENCH_SUPERSET_LIVE_START_TIMEOUT (the renders are still
    measured, under the load of a job that starts and fails, and say so)."""
    started = time.monotonic()
    while True:
        age = _last_batch_age(superuser_dsn)
        if age is not None and age < LIVE_FRESH_SECONDS and time.monotonic() - started > 5:
            return f"job and producer live after {time.monotonic() - started:.0f}s"
        if time.monotonic() - started > LIVE_START_TIMEOUT:
            return (
                f"WARNING: no micro-batch committed within {LIVE_START_TIMEOUT:.0f}s of starting"
                " the job (see var/log/stream-job.log); measuring with the job and producer"
                " running anyway"
            )
        time.sleep(2)  # polling interval (a job start takes tens of seconds)


def _renders_quiet_and_live(
    url: str, accounts: list[Account], slugs: list[str], superuser_dsn: str
) -> None:
    """The renders with the job and producer stopped, then running, side by side."""
    before = {name: supervisor.states().get(name) == "RUNNING" for name in LIVE_PROGRAMS}
    try:
        _set_programs(dict.fromkeys(LIVE_PROGRAMS, False))
        quiet = _renders(url, accounts, slugs, title=" (quiet: job and producer stopped)")
        _set_programs(dict.fromkeys(LIVE_PROGRAMS, True))
        _say(f"\n{_wait_live(superuser_dsn)} (load average {_load_average()})")
        _renders(
            url,
            accounts,
            slugs,
            title=" with the whole stack running (job and producer live)",
            quiet=quiet,
        )
    finally:
        _set_programs(before)


@contextmanager
def _accounts(username: str, password: str) -> Iterator[list[Account]]:
    """The admin, and a viewer made for the run (removed after) unless BENCH_SUPERSET_AS=admin."""
    if not AS_VIEWER:
        yield [("admin", username, password)]
        return
    viewer_password = secrets.token_urlsafe(18)
    accounts.run_people(["remove", VIEWER])  # a run stopped early may have left it
    made = accounts.run_people(["add", VIEWER, "viewer"], stdin=viewer_password + "\n")
    if made.returncode != 0:
        raise RuntimeError(f"could not add the viewer account: {made.stderr[-500:]}")
    try:
        yield [("admin", username, password), ("viewer", VIEWER, viewer_password)]
    finally:
        accounts.run_people(["remove", VIEWER])


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


def _fmt_rss(figures: dict[str, float]) -> str:
    if not figures:
        return "superset not running"
    workers = [v for k, v in figures.items() if k.startswith("worker")]
    return (
        f"master {figures['master']:.0f}, workers "
        + ", ".join(f"{v:.0f}" for v in workers)
        + f"; total {sum(figures.values()):.0f}"
    )


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
    report = open_in_browser(
        url, username, password, var_dir() / "screenshots" / "dashboard-bench.png", home=var_dir()
    )
    _say(
        f"cold start: supervisorctl start -> /health {healthy:.1f}s; -> every chart rendered "
        f"{time.monotonic() - started:.1f}s; ok={report['ok']}"
    )


def run() -> None:
    config = load()
    stored = read_env_file(secrets_file())
    url = f"http://localhost:{config.superset_port}"
    username = os.environ.get("SUPERSET_ADMIN_USERNAME", "admin")
    password = os.environ.get("SUPERSET_ADMIN_PASSWORD") or stored["SUPERSET_ADMIN_PASSWORD"]
    superuser = config.admin_dsn

    _ensure_superset(url)
    if os.environ.get("BENCH_SUPERSET_COLD_START") == "1":
        _cold_start(url, username, password)
    _say(f"Superset RSS idle (MiB): {_fmt_rss(_gunicorn_rss())}")

    admin = psycopg2.connect(superuser)
    try:
        present = _loaded(admin)
        if KEEP and present >= READINGS * 0.99:
            _say(f"reusing the {present:,} readings a kept run loaded")
        else:
            if present:
                _cleanup(admin)
            _generate(admin)
            _vacuum(admin)
        with admin, admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM heart_rate_readings")
            readings = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM heart_rate_minute")
            minutes = cur.fetchone()[0]
        _say(f"the database holds {readings:,} readings and {minutes:,} minute rollups in all")
        _measure(url, username, password, config.reader_dsn, superuser)
    finally:
        if not KEEP:
            _cleanup(admin)
        admin.close()


def _measure(url: str, username: str, password: str, reader_dsn: str, superuser_dsn: str) -> None:
    client = SupersetClient(url, username, password).login()
    wanted = os.environ.get("BENCH_SUPERSET_DASHBOARDS", ",".join(DASHBOARDS)).split(",")
    slugs = [s for s in DASHBOARDS if s in wanted and _exists(client, s)]
    _say(f"\nload average {_load_average()}")
    _reference(client)
    if QUERIES:
        reader = psycopg2.connect(reader_dsn)
        reader.autocommit = True
        try:
            for slug in slugs:
                _chart_rows(client, reader, slug)
        finally:
            reader.close()
        _reference(client)
    with _accounts(username, password) as people:
        if LIVE:
            _renders_quiet_and_live(url, people, slugs, superuser_dsn)
        else:
            _renders(url, people, slugs)
    _say(f"\nSuperset RSS after the queries (MiB): {_fmt_rss(_gunicorn_rss())}")


def _exists(client: SupersetClient, slug: str) -> bool:
    return client.count("dashboard", "slug", slug) > 0
