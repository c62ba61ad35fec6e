"""A person's view: log in, open the dashboard in headless Chromium, every chart renders, none
shows an error; the screenshot is kept in var/screenshots/dashboard.png."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_superset_dashboard import EXPECTED_CHARTS, NOT_PER_CUSTOMER

from heartbeat_ops.config import var_dir

pytestmark = [pytest.mark.integration, pytest.mark.browser]

BROWSER_DIR = Path(__file__).resolve().parent / "browser"


@pytest.fixture(scope="session")
def browser_tooling() -> Path:
    """Debian's chromium and playwright-core, installed by the idempotent script when missing."""
    result = subprocess.run(
        ["bash", str(BROWSER_DIR / "install.sh")], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return BROWSER_DIR / "dashboard.mjs"


def _open_dashboard(superset, tooling: Path, screenshot: Path, customer: str = "") -> dict:
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    result = subprocess.run(
        ["node", str(tooling)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=BROWSER_DIR,
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(var_dir()),
            "SUPERSET_URL": superset.url,
            "SUPERSET_ADMIN_USERNAME": superset.username,
            "SUPERSET_ADMIN_PASSWORD": superset.password,
            "EXPECTED_CHARTS": str(len(EXPECTED_CHARTS)),
            "SCREENSHOT": str(screenshot),
            "TIMEOUT_MS": "120000",
            "CUSTOMER": customer,
        },
    )
    assert result.stdout.strip(), result.stderr
    report = json.loads(result.stdout)
    print(json.dumps({"timings_ms": report["timings_ms"], "page_errors": report["page_errors"]}))
    assert report["ok"], json.dumps(report["problems"], indent=2)
    assert result.returncode == 0

    assert {chart["name"] for chart in report["charts"]} == set(EXPECTED_CHARTS)
    assert all(chart["rendered"] and not chart["error"] for chart in report["charts"])
    # Every chart asked for its data and got it.
    assert len(report["chart_data_responses"]) >= len(EXPECTED_CHARTS)
    assert screenshot.stat().st_size > 10_000
    return report


def test_dashboard_renders_without_errors(superset, sample_data, browser_tooling):
    _open_dashboard(superset, browser_tooling, var_dir() / "screenshots" / "dashboard.png")


def test_customer_filter_reaches_only_per_customer_charts(superset, sample_data, browser_tooling):
    """With the Customer filter set, per-customer charts query one customer; the quarantine and
    pipeline charts (tables without a customer) are out of its scope and still render."""
    report = _open_dashboard(
        superset,
        browser_tooling,
        var_dir() / "screenshots" / "dashboard-customer.png",
        customer=sample_data.customers[0],
    )
    names = {chart["id"]: chart["name"] for chart in report["charts"]}
    filtered = {}
    for request in report["chart_data_requests"]:
        name = names.get(request["slice_id"])
        if name:
            filtered[name] = filtered.get(name, False) or request["customer_filter"]
    assert set(filtered) == set(EXPECTED_CHARTS)
    assert filtered == {
        name: table not in NOT_PER_CUSTOMER for name, (_, table) in EXPECTED_CHARTS.items()
    }
