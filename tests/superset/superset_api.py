"""A small Superset REST client (stdlib only), a chart-query builder, and the SQL of the rollups'
bpm_bins (for rows the tests and the benchmark write into heart_rate_minute).

Shared by the Superset tests and benchmarks/superset_queries.py. Imported charts carry no stored
query_context, so GET /api/v1/chart/{id}/data answers "no query context"; like the dashboard's
frontend, we build each chart's query from its params and POST it to /api/v1/chart/data.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BROWSER_DIR = Path(__file__).resolve().parent / "browser"
DASHBOARD_SLUG = "heart-rate-monitoring"
# The dashboard's default time range, in Superset's advanced syntax ("Last hour" would mean
# "since the start of the previous hour" to Superset's parser).
LAST_HOUR = 'DATEADD(DATETIME("now"), -1, hour) : now'


class SupersetError(RuntimeError):
    def __init__(self, message: str, *, token_expired: bool = False) -> None:
        super().__init__(message)
        self.token_expired = token_expired


class SupersetClient:
    """Logs in as a database user; keeps the session cookie and the CSRF token for POSTs."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.token: str | None = None
        self.csrf: str | None = None
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def _request(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        """The JSON answer. An access token lives 15 minutes and a slow suite holds one client
        longer: an expired token is renewed by logging in again, once."""
        try:
            return self._send(method, path, body, timeout)
        except SupersetError as error:
            if not (self.token and error.token_expired):
                raise
            self.login()
            return self._send(method, path, body, timeout)

    def _send(self, method: str, path: str, body: Any, timeout: float) -> Any:
        headers = {"Accept": "application/json", "Referer": self.base_url}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.csrf and method != "GET":
            headers["X-CSRFToken"] = self.csrf
        request = urllib.request.Request(
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:2000]
            raise SupersetError(
                f"{method} {path} -> {error.code}: {detail}",
                token_expired=error.code == 401 and "Token has expired" in detail,
            ) from error

    def login(self) -> SupersetClient:
        self.token = self.csrf = None
        answer = self._request(
            "POST",
            "/api/v1/security/login",
            {
                "username": self.username,
                "password": self.password,
                "provider": "db",
                "refresh": False,
            },
        )
        self.token = answer["access_token"]
        self.csrf = self._request("GET", "/api/v1/security/csrf_token/")["result"]
        return self

    def get(self, path: str, **query: str) -> Any:
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return self._request("GET", path + suffix)

    def post(self, path: str, body: Any, timeout: float = 120) -> Any:
        return self._request("POST", path, body, timeout=timeout)

    def count(self, resource: str, column: str | None = None, value: str | None = None) -> int:
        """How many dashboards/charts/datasets exist (optionally with column == value)."""
        rison = "(page_size:1)"
        if column:
            rison = f"(filters:!((col:{column},opr:eq,value:'{value}')),page_size:1)"
        return self.get(f"/api/v1/{resource}/", q=rison)["count"]

    def dashboard_charts(self, slug: str = DASHBOARD_SLUG) -> list[dict[str, Any]]:
        return self.get(f"/api/v1/dashboard/{slug}/charts")["result"]

    def chart_data(self, query_context: dict[str, Any]) -> dict[str, Any]:
        return self.post("/api/v1/chart/data", query_context)


def wait_healthy(
    base_url: str, timeout: float = 180.0, process: subprocess.Popen | None = None
) -> float:
    """Poll /health until 200; returns the seconds waited. Fails at once if `process` (the
    Superset being waited for) has exited."""
    started = time.monotonic()
    while True:
        if process is not None and process.poll() is not None:
            raise SupersetError(f"Superset exited with {process.returncode} before {base_url}")
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=3) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        if time.monotonic() - started > timeout:
            raise SupersetError(f"{base_url}/health not 200 after {timeout:.0f}s")
        time.sleep(0.5)


@contextmanager
def serving(environment: dict[str, str], log_path: Path, timeout: float = 300) -> Iterator[str]:
    """superset/run.sh (migrate, init, import, gunicorn) with `environment`, healthy: its URL.
    Stopped, with everything it started, on leaving; its output goes to `log_path`."""
    url = f"http://localhost:{environment['SUPERSET_PORT']}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            ["bash", str(ROOT / "superset" / "run.sh")],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            wait_healthy(url, timeout=timeout, process=process)
        except SupersetError as error:
            raise SupersetError(f"{error}; see {log_path}") from error
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def run_import(
    environment: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Import the bundle the way the supervised start does (superset/run.sh import)."""
    return subprocess.run(
        ["bash", str(ROOT / "superset" / "run.sh"), "import"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(environment or {})},
    )


@dataclass(frozen=True)
class DashboardVisit:
    """One dashboard for browser/dashboard.mjs to open; `follow_customer_link` > 0 also clicks
    the first link to the customer dashboard (the alerts table's) and expects that many charts
    there, its screenshot `<screenshot>-linked.png`."""

    screenshot: Path
    slug: str = DASHBOARD_SLUG
    expected_charts: int = 0
    customer: str = ""
    time_range: str = ""
    revisit: bool = False
    follow_customer_link: int = 0

    def settings(self) -> dict[str, Any]:
        """Its settings for dashboard.mjs; the screenshot's folder made, an old one removed."""
        self.screenshot.parent.mkdir(parents=True, exist_ok=True)
        self.screenshot.unlink(missing_ok=True)
        return {
            "slug": self.slug,
            "expected_charts": self.expected_charts,
            "screenshot": str(self.screenshot),
            "customer": self.customer,
            "time_range": self.time_range,
            "revisit": self.revisit,
            "follow_customer_link": self.follow_customer_link,
            "follow_screenshot": str(
                self.screenshot.with_name(self.screenshot.stem + "-linked.png")
            ),
        }


def open_dashboards(
    base_url: str,
    username: str,
    password: str,
    visits: list[DashboardVisit],
    *,
    home: Path,
    timeout: float = 240,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Open `visits` one after another in one headless Chromium after one login
    (browser/dashboard.mjs; a Chromium start and a login cost about as much CPU as a dashboard):
    each visit's report, and the session's (`ok`, `login_retried`, `problems`). A visit that
    fails is reported and the next one still runs; `timeout` is per visit, a chart wait at most
    a minute less. The browser tooling must be installed (browser/install.sh)."""
    result = subprocess.run(
        ["node", str(BROWSER_DIR / "dashboard.mjs")],
        capture_output=True,
        text=True,
        timeout=timeout * len(visits),
        cwd=BROWSER_DIR,
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "SUPERSET_URL": base_url,
            "SUPERSET_ADMIN_USERNAME": username,
            "SUPERSET_ADMIN_PASSWORD": password,
            "TIMEOUT_MS": str(int((timeout - 60) * 1000)),
            "VISITS": json.dumps([visit.settings() for visit in visits]),
        },
    )
    if not result.stdout.strip():
        raise SupersetError(f"dashboard.mjs printed no report: {result.stderr[-2000:]}")
    session = json.loads(result.stdout)
    return session["visits"], session


def open_in_browser(
    base_url: str,
    username: str,
    password: str,
    screenshot: Path,
    *,
    home: Path | None = None,
    timeout: float = 240,
    **options: Any,
) -> dict[str, Any]:
    """Open one dashboard, logged in as `username` (`options` are DashboardVisit's): its report,
    with the session's `login_retried`."""
    (report,), session = open_dashboards(
        base_url, username, password, [DashboardVisit(screenshot, **options)],
        home=home or screenshot.parent, timeout=timeout,
    )  # fmt: skip
    return {**report, "login_retried": session["login_retried"]}


# --- chart queries -------------------------------------------------------------------------


def _adhoc_to_filters(
    adhoc_filters: list[dict[str, Any]], time_range: str | None
) -> tuple[list[dict[str, Any]], list[str]]:
    """The frontend's translation of adhoc filters: simple ones become filters, SQL ones WHERE."""
    filters, where = [], []
    for adhoc in adhoc_filters:
        if adhoc.get("expressionType") == "SQL":
            where.append(f"({adhoc['sqlExpression']})")
            continue
        value = adhoc.get("comparator")
        if adhoc["operator"] == "TEMPORAL_RANGE" and time_range is not None:
            value = time_range  # what the dashboard's native time filter does
        filters.append({"col": adhoc["subject"], "op": adhoc["operator"], "val": value})
    return filters, where


def _metric_label(metric: Any) -> str:
    return metric if isinstance(metric, str) else metric.get("label", "metric")


def build_query_context(
    chart: dict[str, Any],
    *,
    time_range: str | None = None,
    customers: list[str] | None = None,
) -> dict[str, Any]:
    """A /api/v1/chart/data body for a chart of the dashboard (its form_data and datasource).

    `time_range` and `customers` play the dashboard's native filters.
    """
    params = chart["form_data"]
    viz = params["viz_type"]
    dataset_id = int(str(params["datasource"]).split("__")[0])
    filters, where = _adhoc_to_filters(params.get("adhoc_filters", []), time_range)
    if customers:
        filters.append({"col": "customer_id", "op": "IN", "val": customers})
    temporal = next((f["val"] for f in filters if f["op"] == "TEMPORAL_RANGE"), None)
    query: dict[str, Any] = {
        "filters": filters,
        "extras": {"where": " AND ".join(where), "having": ""},
        "time_range": temporal or "No filter",
        "columns": [],
        "metrics": [],
        "orderby": [],
        "row_limit": params.get("row_limit", 10000),
        "order_desc": True,
        "annotation_layers": [],
        "url_params": {},
        "custom_params": {},
        "custom_form_data": {},
    }
    if viz in ("big_number_total", "big_number"):
        query["metrics"] = [params["metric"]]
        query["row_limit"] = 1
    elif viz.startswith("echarts_timeseries"):
        axis = params["x_axis"]
        column = {"columnType": "BASE_AXIS", "sqlExpression": axis, "label": axis}
        column["expressionType"] = "SQL"
        if params.get("time_grain_sqla"):
            column["timeGrain"] = params["time_grain_sqla"]
        query["columns"] = [column, *params.get("groupby", [])]
        query["metrics"] = params["metrics"]
        query["orderby"] = [[params["metrics"][0], False]]
        query["series_columns"] = params.get("groupby", [])
    elif viz == "pie":
        query["columns"] = params["groupby"]
        query["metrics"] = [params["metric"]]
        query["orderby"] = [[params["metric"], False]]
    elif viz == "table" and params.get("query_mode") == "raw":
        query["columns"] = params["all_columns"]
        query["orderby"] = [json.loads(item) for item in params.get("order_by_cols", [])]
    elif viz == "table":
        query["columns"] = params.get("groupby", [])
        query["metrics"] = params.get("metrics", [])
        if query["metrics"]:
            query["orderby"] = [[query["metrics"][0], False]]
    else:
        raise ValueError(f"no query builder for viz_type {viz}")
    query["metrics"] = query["metrics"] or None
    return {
        "datasource": {"id": dataset_id, "type": "table"},
        "force": True,
        "queries": [query],
        "form_data": {**params, "slice_id": chart.get("id")},
        "result_format": "json",
        "result_type": "full",
    }


def metric_labels(chart: dict[str, Any]) -> list[str]:
    params = chart["form_data"]
    metrics = params.get("metrics") or ([params["metric"]] if params.get("metric") else [])
    return [_metric_label(m) for m in metrics]


# --- a person's session over plain HTTP ----------------------------------------------------

_CSRF_INPUT = re.compile(r'id="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*id="csrf_token"')


def logs_in(base_url: str, username: str, password: str) -> bool:
    """Superset's own login API accepts the pair (200 with a token; 401 otherwise)."""
    body = {"username": username, "password": password, "provider": "db", "refresh": False}
    try:  # the login alone: a viewer may not fetch the CSRF token the client's login() does
        answer = SupersetClient(base_url, username, password)._request(
            "POST", "/api/v1/security/login", body
        )
    except SupersetError as error:
        if "-> 401" not in str(error):
            raise
        return False
    return bool(answer["access_token"])


class PersonSession:
    """What a person's browser holds after the login form: a session cookie and the CSRF token
    Superset puts in its pages. Requests answer (status, body text); nothing raises on 4xx, the
    status is the finding."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.csrf = ""
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def request(
        self, method: str, path: str, body: Any = None, form: dict[str, str] | None = None
    ) -> tuple[int, str]:
        headers = {"Referer": self.base_url + "/"}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.csrf and method != "GET":
            headers["X-CSRFToken"] = self.csrf
        request = urllib.request.Request(
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with self.opener.open(request, timeout=120) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def _page_csrf(self, path: str) -> str:
        status, text = self.request("GET", path)
        found = _CSRF_INPUT.search(text)
        if status != 200 or not found:
            raise SupersetError(f"GET {path} -> {status}: no csrf_token in the page")
        return found.group(1) or found.group(2)

    def login(self, username: str, password: str) -> bool:
        """The login form, as a browser posts it; True when Superset then knows who we are."""
        self.csrf = self._page_csrf("/login/")
        form = {"username": username, "password": password, "csrf_token": self.csrf}
        self.request("POST", "/login/", form=form)
        if self.request("GET", "/api/v1/me/")[0] != 200:
            return False
        self.csrf = self._page_csrf("/dashboard/list/")  # the logged-in pages' token
        return True


def refusal_calls(admin: SupersetClient, slug: str = DASHBOARD_SLUG) -> list[dict[str, Any]]:
    """What a viewer must be refused (403), as requests a logged-in page can send: SQL Lab's
    execution, writes to a chart, a dataset and a dashboard, the database list, Explore's data.
    The ids come from the admin's view. A body with an unknown field means the admin's same
    request fails validation (400/422) instead: it passed the permission check."""
    chart = admin.dashboard_charts(slug)[0]
    dataset_id = int(str(chart["form_data"]["datasource"]).split("__")[0])
    database_id = admin.get("/api/v1/database/")["result"][0]["id"]
    bogus = {"not_a_field": 1}
    return [
        {"what": "run SQL", "method": "POST", "path": "/api/v1/sqllab/execute/",
         "body": {"database_id": database_id, "sql": "SELECT 1", "runAsync": False}},
        {"what": "edit a chart", "method": "PUT", "path": f"/api/v1/chart/{chart['id']}",
         "body": bogus},
        {"what": "create a chart", "method": "POST", "path": "/api/v1/chart/", "body": bogus},
        {"what": "edit a dataset", "method": "PUT", "path": f"/api/v1/dataset/{dataset_id}",
         "body": bogus},
        {"what": "edit a dashboard", "method": "PUT", "path": f"/api/v1/dashboard/{slug}",
         "body": bogus},
        {"what": "list databases", "method": "GET", "path": "/api/v1/database/"},
        {"what": "explore a chart", "method": "GET",
         "path": f"/api/v1/explore/?slice_id={chart['id']}"},
    ]  # fmt: skip


def editor_pages(admin: SupersetClient, slug: str = DASHBOARD_SLUG) -> list[str]:
    """SQL Lab's editor and Explore's chart editor (of the dashboard's first chart)."""
    return ["/sqllab/", f"/explore/?slice_id={admin.dashboard_charts(slug)[0]['id']}"]


def viewer_over_http(
    base_url: str, username: str, password: str, admin: SupersetClient, slugs: list[str]
) -> dict[str, Any]:
    """A viewer as plain HTTP sees Superset: logged in through the form; which dashboards are
    listed; the status of each dashboard and of every chart's data query (readable: 200); the
    status of every refusal call and editor page (refused: 403)."""
    person = PersonSession(base_url)
    report: dict[str, Any] = {"logged_in": person.login(username, password)}
    if not report["logged_in"]:
        return report
    status, text = person.request("GET", "/api/v1/dashboard/?q=(page_size:100)")
    listed = json.loads(text)["result"] if status == 200 else []
    report["listed"] = sorted(dashboard["slug"] for dashboard in listed)
    report["readable"] = {}
    for slug in slugs:
        statuses = [person.request("GET", f"/api/v1/dashboard/{slug}")[0]]
        status, text = person.request("GET", f"/api/v1/dashboard/{slug}/charts")
        statuses.append(status)
        for chart in json.loads(text)["result"] if status == 200 else []:
            body = build_query_context(chart)
            statuses.append(person.request("POST", "/api/v1/chart/data", body)[0])
        report["readable"][slug] = statuses
    report["refused"] = {
        call["what"]: person.request(call["method"], call["path"], call.get("body"))[0]
        for call in refusal_calls(admin)
    }
    report["pages"] = {path: person.request("GET", path)[0] for path in editor_pages(admin)}
    return report


def viewer_problems(report: dict[str, Any], slugs: list[str]) -> list[str]:
    """What is wrong in a viewer_over_http report ([]: logged in, exactly `slugs` listed, each
    dashboard and chart query answered 200, every refusal and editor page answered 403)."""
    if not report["logged_in"]:
        return ["the viewer could not log in through the form"]
    problems = []
    if report["listed"] != sorted(slugs):
        problems.append(f"dashboards listed {report['listed']}, expected {sorted(slugs)}")
    for slug, statuses in report["readable"].items():
        if len(statuses) < 3 or set(statuses) != {200}:
            problems.append(f"dashboard {slug}: statuses {statuses} (dashboard, charts, data)")
    for what, status in {**report["refused"], **report["pages"]}.items():
        if status != 403:
            problems.append(f"{what}: HTTP {status}, expected 403")
    return problems


def dashboard_numbers(
    client: SupersetClient, slug: str, time_range: str, customers: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """What every chart of a dashboard shows for `time_range` (and `customers`, the customer
    filter): slice name -> its query's columns and rows, as the dashboard's frontend gets them."""
    numbers = {}
    for chart in client.dashboard_charts(slug):
        body = build_query_context(chart, time_range=time_range, customers=customers)
        result = client.chart_data(body)["result"][0]
        if result.get("error"):
            raise SupersetError(f"{slug}: {chart['slice_name']}: {result['error']}")
        numbers[chart["slice_name"]] = {"colnames": result["colnames"], "data": result["data"]}
    return numbers
