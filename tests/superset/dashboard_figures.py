"""What every dashboard shows, in a form two Superset instances can be compared by: the backup
test compares before and after a restore, the read-replica test the primary and the replica."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import yaml

from tests.superset.catalogue import BUNDLE, CUSTOMER_DASHBOARD_SLUG
from tests.superset.superset_api import SupersetClient, dashboard_numbers, serving
from tests.support.sockets import free_port

# Columns that count from the present (an open episode's age): the one thing a dashboard shows
# that moves with the clock, whatever the time range.
CLOCK_COLUMNS = {"age", "age_s"}


@contextmanager
def own_superset(env: dict[str, str], home: Path) -> Iterator[SupersetClient]:
    """A Superset of a test's own on `env`'s stack (a free port, its own home, its log in
    `home`), logged in as its admin; stopped on leaving."""
    environment = {**env, "SUPERSET_PORT": str(free_port()), "SUPERSET_HOME": str(home),
                   "SUPERSET_WORKERS": "1", "SUPERSET_BIND_HOST": "127.0.0.1"}  # fmt: skip
    with serving(environment, home / "superset.log") as url:
        yield SupersetClient(
            url, env.get("SUPERSET_ADMIN_USERNAME", "admin"), env["SUPERSET_ADMIN_PASSWORD"]
        ).login()


def fixed_range(end: datetime) -> str:
    """Superset's absolute range syntax: the half day of history before `end`, whole hours."""
    stop = end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = stop - timedelta(hours=14)
    return f"{start:%Y-%m-%dT%H:%M:%S} : {stop:%Y-%m-%dT%H:%M:%S}"


def unordered(chart: dict[str, object]) -> dict[str, object]:
    """A chart's result with its rows as a multiset: rows a query leaves unordered (a series
    ordered by its metric, with ties) come back in the table's physical order, which a restore
    or a replica may differ in; what the chart shows is the same."""
    return {**chart, "data": sorted(chart["data"], key=repr)}


def bundle_dashboards() -> list[str]:
    """Every dashboard's slug, from the bundle: whatever dashboards there are, all compared."""
    return sorted(
        yaml.safe_load(path.read_text())["slug"] for path in (BUNDLE / "dashboards").glob("*.yaml")
    )


def every_dashboard(client: SupersetClient, time_range: str, customer: str) -> dict[str, object]:
    """Slug -> chart -> result, for every dashboard of the bundle over a fixed range (the
    customer one for `customer`): the columns that move with the clock left out, rows as
    multisets."""
    shown = {}
    for slug in bundle_dashboards():
        customers = [customer] if slug == CUSTOMER_DASHBOARD_SLUG else None
        charts = dashboard_numbers(client, slug, time_range, customers)
        for chart in charts.values():
            chart["data"] = [
                {k: v for k, v in row.items() if k not in CLOCK_COLUMNS} for row in chart["data"]
            ]
        shown[slug] = {name: unordered(chart) for name, chart in charts.items()}
    return shown
