"""People's accounts (issue 21): `heartbeat-ops superset add-user|list-users|remove-user`, and the
viewer role as a person meets it: SQL Lab and chart editing are refused, judged by HTTP status
and by the page shown (an admin's visit to the same pages is the control that the editors are
detected at all). That every dashboard renders every chart for a viewer is shown by
test_superset_browser.py, which opens them all as the package's viewer."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from heartbeat_ops.config import var_dir
from tests.superset.catalogue import (
    CUSTOMER_CHARTS,
    CUSTOMER_DASHBOARD_SLUG,
    EXPECTED_CHARTS,
    OPERATIONS_CHARTS,
    OPERATIONS_DASHBOARD_SLUG,
)
from tests.superset.people import listed, superset_command
from tests.superset.superset_api import (
    BROWSER_DIR,
    logs_in,
    open_in_browser,
    refusal_calls,
    viewer_over_http,
    viewer_problems,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

DASHBOARDS = {
    "heart-rate-monitoring": EXPECTED_CHARTS,
    CUSTOMER_DASHBOARD_SLUG: CUSTOMER_CHARTS,
    OPERATIONS_DASHBOARD_SLUG: OPERATIONS_CHARTS,
}


def test_accounts_are_added_listed_and_removed(superset, superset_env, viewer):
    name, password = viewer
    editor = f"analyst-{uuid.uuid4().hex[:6]}"
    added = superset_command(
        superset_env, "add-user", editor, "--role", "editor", "--password-stdin",
        stdin="chosen-by-a-person-1\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "password:" not in added.stdout  # a chosen password is never echoed
    users = listed(superset_env)
    assert users[name] == "viewer" and users[editor] == "editor" and users["admin"] == "admin"
    assert logs_in(superset.url, name, password)
    assert logs_in(superset.url, editor, "chosen-by-a-person-1")
    assert not logs_in(superset.url, name, "not-" + password)

    again = superset_command(superset_env, "add-user", editor, "--role", "viewer")
    assert again.returncode != 0 and "password:" not in again.stdout  # no second account

    removed = superset_command(superset_env, "remove-user", editor)
    assert removed.returncode == 0, removed.stderr
    assert editor not in listed(superset_env)
    assert not logs_in(superset.url, editor, "chosen-by-a-person-1")
    # the stack's own admin
    assert superset_command(superset_env, "remove-user", "admin").returncode != 0


def _visit(
    superset, username: str, password: str, paths: list[str], prefix: Path, calls=()
) -> dict:
    """Log in through the browser; open `paths`, send `calls` from the page. The report."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["node", str(BROWSER_DIR / "visit.mjs")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BROWSER_DIR,
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(var_dir()),
            "SUPERSET_URL": superset.url,
            "SUPERSET_USERNAME": username,
            "SUPERSET_PASSWORD": password,
            "PATHS": ",".join(paths),
            "SCREENSHOT_PREFIX": str(prefix),
            "CALLS": json.dumps(list(calls)),
        },
    )
    report = json.loads(result.stdout)
    assert report["ok"], json.dumps(report["problems"], indent=2)
    return report


def _pages(report: dict) -> dict[str, dict]:
    return {page["path"]: page for page in report["pages"]}


def _statuses(report: dict) -> dict[str, int]:
    return {call["what"]: call["status"] for call in report["calls"]}


@pytest.mark.usefixtures("browser_tooling")
def test_viewer_is_refused_sql_lab_and_editing_by_status_and_by_page(
    superset, superset_client, viewer
):
    """One browser visit each for the viewer and the admin (the control), logged in as a person:
    - by HTTP status, from the logged-in page with its CSRF token: SQL Lab's execution, every
      write and the database list answer 403 to the viewer; the admin's same requests pass the
      permission check (a body with an unknown field fails validation instead: 400/422). The
      calls are superset_api.refusal_calls, which `make compose-test` sends too;
    - by the page a person sees: the admin opens SQL Lab's editor and Explore's chart editor at
      these addresses; the viewer's browser gets 403 Forbidden for both, and no editor."""
    calls = refusal_calls(superset_client)
    chart_id = superset_client.dashboard_charts()[0]["id"]
    sql_lab, explore = "/sqllab/", f"/explore/?slice_id={chart_id}"
    screenshots = var_dir() / "screenshots"
    name, password = viewer
    viewer_report = _visit(
        superset, name, password, [sql_lab, explore], screenshots / "viewer", calls
    )
    admin_report = _visit(superset, superset.username, superset.password, [sql_lab, explore],
                          screenshots / "admin", calls)  # fmt: skip

    assert all(call["csrf"] for call in viewer_report["calls"])  # refused by role, not by CSRF
    assert _statuses(viewer_report) == {call["what"]: 403 for call in calls}, viewer_report["calls"]
    admin = _statuses(admin_report)
    assert admin["run SQL"] == 200 and admin["list databases"] == 200, admin
    assert admin["explore a chart"] != 403, admin_report["calls"]
    for what in ("edit a chart", "create a chart", "edit a dataset", "edit a dashboard"):
        assert admin[what] in (400, 422), (what, admin)

    pages = {"admin": _pages(admin_report), "viewer": _pages(viewer_report)}
    summary = {
        who: {path: {k: page[k] for k in ("status", "redirected_from", "final_url", "sql_editor",
                                           "chart_editor")} | {"text": page["text"][:300]}
              for path, page in seen.items()}
        for who, seen in pages.items()
    }  # fmt: skip
    # The control: the admin gets both pages, with SQL Lab's editor and Explore's chart editor.
    admin_pages = pages["admin"]
    assert admin_pages[sql_lab]["status"] == 200 and admin_pages[sql_lab]["sql_editor"], summary
    assert admin_pages[explore]["status"] == 200 and admin_pages[explore]["chart_editor"], summary
    # The viewer's browser gets 403 for both documents, Superset's refusal, and no editor.
    assert set(pages["viewer"]) == {sql_lab, explore}, summary
    for page in pages["viewer"].values():
        assert page["status"] == 403, summary
        assert "403 Forbidden" in page["text"] and "permission" in page["text"], summary
        assert not page["sql_editor"] and not page["chart_editor"], summary


@pytest.mark.usefixtures("browser_tooling")
def test_a_person_who_used_their_account_can_be_removed(superset, superset_env):
    """Opening a dashboard in the browser leaves marks of the person in Superset's metadata (the
    filter state, the action log), which blocked the removal; they are kept without the name,
    and the account and its login are gone."""
    name = f"used-{uuid.uuid4().hex[:6]}"
    added = superset_command(
        superset_env, "add-user", name, "--role", "viewer", "--password-stdin",
        stdin="used-by-a-person-1\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    report = open_in_browser(
        superset.url, name, "used-by-a-person-1", var_dir() / "screenshots" / "used.png",
        home=var_dir(),
    )  # fmt: skip
    assert report["ok"], json.dumps(report["problems"], indent=2)

    removed = superset_command(superset_env, "remove-user", name)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    released = re.search(r"\((\d+) marks of theirs released\)", removed.stdout)
    assert released and int(released[1]) > 0, removed.stdout
    assert name not in listed(superset_env)
    assert not logs_in(superset.url, name, "used-by-a-person-1")


def test_viewer_over_plain_http(superset, superset_client, sample_data, viewer):
    """The check `make compose-test` runs against the compose Superset (superset_api
    .viewer_over_http), here against the tests' own: form login, both dashboards listed and
    every chart's data readable, the refusals 403; the admin's same session is the control."""
    name, password = viewer
    report = viewer_over_http(superset.url, name, password, superset_client, list(DASHBOARDS))
    assert viewer_problems(report, list(DASHBOARDS)) == [], report
    admin = viewer_over_http(superset.url, superset.username, superset.password,
                             superset_client, list(DASHBOARDS))  # fmt: skip
    assert admin["logged_in"] and set(DASHBOARDS) <= set(admin["listed"]), admin
    assert admin["refused"]["run SQL"] == 200 and admin["pages"]["/sqllab/"] == 200, admin
