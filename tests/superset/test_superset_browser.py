"""A person's view: log in as a viewer (the least privileged account that must see every
dashboard), open each dashboard in headless Chromium, every chart renders and gets its data,
none shows an error; the alerts table's customer link opens that customer's dashboard.
All the visits share one Chromium and one login (the `visits` fixture). Screenshots are kept in
var/screenshots/."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg2
import pytest

from heartbeat_ops.config import var_dir
from tests.superset.catalogue import (
    CUSTOMER_CHARTS,
    CUSTOMER_DASHBOARD_SLUG,
    EXPECTED_CHARTS,
    OPERATIONS_CHARTS,
    OPERATIONS_DASHBOARD_SLUG,
)
from tests.superset.superset_api import DashboardVisit, open_dashboards

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.usefixtures("browser_tooling", "sample_data"),
]


@pytest.fixture(scope="module")
def visits(superset, viewer, sample_data) -> dict[str, dict]:
    """Every dashboard visit of this file in one Chromium after one login as the viewer (a
    Chromium start and a login each cost about what a dashboard does): name -> its report."""
    shots = var_dir() / "screenshots"
    planned = {
        "dashboard": DashboardVisit(shots / "dashboard.png", expected_charts=len(EXPECTED_CHARTS)),
        "operations": DashboardVisit(
            shots / "operations.png", OPERATIONS_DASHBOARD_SLUG, len(OPERATIONS_CHARTS)
        ),
        # the dashboard opened with the Customer filter set, then the alerts table's link to
        # that customer followed
        "for a customer": DashboardVisit(
            shots / "dashboard-customer.png",
            expected_charts=len(EXPECTED_CHARTS),
            customer=sample_data.customers[0],
            follow_customer_link=len(CUSTOMER_CHARTS),
        ),
        # opened with a customer (as the alerts table's link does), over the default range and
        # one long enough for hours
        "customer": DashboardVisit(
            shots / "customer-dashboard.png",
            CUSTOMER_DASHBOARD_SLUG,
            len(CUSTOMER_CHARTS),
            customer=sample_data.customers[1],
        ),
        "customer, last week": DashboardVisit(
            shots / "customer-week.png",
            CUSTOMER_DASHBOARD_SLUG,
            len(CUSTOMER_CHARTS),
            customer=sample_data.customers[1],
            time_range="Last week",
        ),
        # opened without a customer: the required filter picks one by itself
        "customer picked": DashboardVisit(
            shots / "customer-default.png", CUSTOMER_DASHBOARD_SLUG, len(CUSTOMER_CHARTS)
        ),
    }
    name, password = viewer
    reports, session = open_dashboards(
        superset.url, name, password, list(planned.values()), home=var_dir()
    )
    assert not session["problems"], json.dumps(session["problems"], indent=2)
    return dict(zip(planned, reports, strict=True))


def _rendered(report: dict, charts: dict) -> dict:
    """The visit's report, checked: every chart of `charts` drawn with its data, no error."""
    print(json.dumps({"timings_ms": report["timings_ms"], "page_errors": report["page_errors"]}))
    assert report["ok"], json.dumps(report["problems"], indent=2)

    assert {chart["name"] for chart in report["charts"]} == set(charts)
    assert all(chart["rendered"] and not chart["error"] for chart in report["charts"])
    # Every chart asked for its data (requests are recorded as sent; a response is recorded once
    # its body is read, which can trail the drawing on a loaded machine) and every answer read
    # was a 200 without errors.
    asked = {request["slice_id"] for request in report["chart_data_requests"]}
    assert {chart["id"] for chart in report["charts"]} <= asked
    assert len(report["chart_data_responses"]) >= len(charts)
    assert all(r["status"] == 200 and not r.get("errors") for r in report["chart_data_responses"])
    assert Path(report["screenshot"]).stat().st_size > 10_000
    return report


def _customers_asked(report: dict, requests: list[dict]) -> dict[str, set[str]]:
    """Per chart name, the customers its chart-data requests were filtered to."""
    names = {chart["id"]: chart["name"] for chart in report["charts"]}
    asked: dict[str, set[str]] = {}
    for request in requests:
        name = names.get(request["slice_id"])
        if name:
            asked.setdefault(name, set()).update(request["customers"])
    return asked


def test_dashboard_renders_without_errors(visits):
    _rendered(visits["dashboard"], EXPECTED_CHARTS)


def test_operations_dashboard_renders_without_errors(visits):
    """Alert delivery, quarantine and pipeline health, on their own dashboard."""
    _rendered(visits["operations"], OPERATIONS_CHARTS)


def test_customer_filter_reaches_only_per_customer_charts(sample_data, visits):
    """With the Customer filter set, every chart of the main dashboard (all per customer) queries
    that one customer."""
    customer = sample_data.customers[0]
    report = _rendered(visits["for a customer"], EXPECTED_CHARTS)
    requests = report["chart_data_requests"]
    on_the_dashboard = requests[: len(requests) - len(report["followed"]["requests"])]
    asked = _customers_asked(report, on_the_dashboard)
    assert set(asked) == set(EXPECTED_CHARTS)
    assert asked == {name: {customer} for name in EXPECTED_CHARTS}


@pytest.mark.parametrize("visit", ["customer", "customer, last week"])
def test_customer_dashboard_renders_for_one_customer(sample_data, visits, visit):
    """Opened with a customer (as the alerts table's link does), every chart of the customer
    dashboard renders and asks for that customer only, over a range long enough for hours."""
    customer = sample_data.customers[1]
    report = _rendered(visits[visit], CUSTOMER_CHARTS)
    asked = _customers_asked(report, report["chart_data_requests"])
    assert asked == {name: {customer} for name in CUSTOMER_CHARTS}


def test_customer_dashboard_picks_a_customer_by_itself(visits, superuser_dsn):
    """Opened without one, the required Customer filter picks the customer worth looking at (the
    sample's open critical episode is the newest): every chart still renders, all for it."""
    with psycopg2.connect(superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT customer_id, reason FROM heart_rate_customer_priority WHERE priority = 1"
        )
        ((worth_looking_at, reason),) = cur.fetchall()
    assert reason == "open critical episode"
    report = _rendered(visits["customer picked"], CUSTOMER_CHARTS)
    asked = _customers_asked(report, report["chart_data_requests"])
    assert set(asked) == set(CUSTOMER_CHARTS)
    picked = set().union(*asked.values())
    assert picked == {worth_looking_at}
    assert all(customers == picked for customers in asked.values())


def test_alerts_table_links_to_the_customer_dashboard(sample_data, visits):
    """Clicking a customer in the alerts table opens the customer dashboard for that customer."""
    followed = _rendered(visits["for a customer"], EXPECTED_CHARTS)["followed"]
    assert followed["customer"] == sample_data.customers[0]
    assert f"/superset/dashboard/{CUSTOMER_DASHBOARD_SLUG}/" in followed["url"]
    assert {chart["name"] for chart in followed["charts"]} == set(CUSTOMER_CHARTS)
    assert all(chart["rendered"] and not chart["error"] for chart in followed["charts"])
    names = {chart["id"]: chart["name"] for chart in followed["charts"]}
    asked: dict[str, set[str]] = {}
    for request in followed["requests"]:
        if request["slice_id"] in names:
            asked.setdefault(names[request["slice_id"]], set()).update(request["customers"])
    assert asked == {name: {sample_data.customers[0]} for name in CUSTOMER_CHARTS}
