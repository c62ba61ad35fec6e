"""Two claims of README "The dashboard" and superset/README.md, on the tests' own Superset:

- chart results are cached for one refresh and auto-refresh reads the cache: a second load within
  the refresh is the first one's result from the cache (even though the data changed), a load
  after it is fresh, and the frontend is told to fetch (not force) on auto-refresh;
- a failed import fails the start: `superset/run.sh` with a bundle that fails validation exits
  non-zero with the reason and never starts the web server.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from heartbeat_stream.sinks.rollups import merge_sql
from tests.superset.superset_api import LAST_HOUR, ROOT, build_query_context
from tests.support.sockets import free_port
from tests.support.stream_job import wait_for

pytestmark = pytest.mark.integration

REFRESH_SECONDS = 10  # HEARTBEAT_DASHBOARD_REFRESH_SECONDS' default: the cache's lifetime
CACHED_CHART = "Total readings"


def _add_reading(superuser_dsn: str, customer: str) -> None:
    """One reading of `customer` in the minute rollups, as the sink merges it."""
    with psycopg2.connect(superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "WITH inserted AS (SELECT %s::text AS customer_id, now() - interval '5 minutes'"
            f' AS "timestamp", 70 AS heart_rate) {merge_sql("inserted")}',
            (customer,),
        )
    conn.close()


@pytest.fixture
def cache_customer(superuser_dsn: str) -> Iterator[str]:
    """A customer of this test only: its chart query's cache key is new."""
    customer = f"test-cache-{uuid.uuid4().hex[:10]}"
    try:
        yield customer
    finally:
        with psycopg2.connect(superuser_dsn) as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM heart_rate_minute WHERE customer_id = %s", (customer,))
        conn.close()


def test_a_second_load_within_one_refresh_is_served_from_the_cache(
    superset, superset_client, superuser_dsn, cache_customer
):
    [chart] = [c for c in superset_client.dashboard_charts() if c["slice_name"] == CACHED_CHART]
    context = build_query_context(chart, time_range=LAST_HOUR, customers=[cache_customer])
    context["force"] = False  # what a dashboard load and an auto-refresh in "fetch" mode ask

    def load(force: bool = False) -> dict:
        return superset_client.chart_data({**context, "force": force})["result"][0]

    def total(result: dict) -> int:
        [row] = result["data"]
        return next(iter(row.values()))

    _add_reading(superuser_dsn, cache_customer)
    first = load()
    loaded_at = time.monotonic()
    assert not first["is_cached"] and first["cached_dttm"] is None, first  # queried
    assert total(first) == 1

    _add_reading(superuser_dsn, cache_customer)  # the database now holds 2
    second = load()
    assert time.monotonic() - loaded_at < REFRESH_SECONDS, "too slow to prove anything"
    assert second["is_cached"] is True and second["cached_dttm"] is not None, second
    assert total(second) == 1  # the first load's result: the database holds 2 by now
    assert second["cache_key"] == first["cache_key"]

    # Nothing older than one refresh: once it has passed, a load reads the database again.
    loads: list[dict] = []
    wait_for(lambda: not (loads.append(load()) or loads[-1]["is_cached"]), 3 * REFRESH_SECONDS,
             "the cached result to expire", poll=0.5)  # fmt: skip
    assert time.monotonic() - loaded_at >= REFRESH_SECONDS - 1
    assert total(loads[-1]) == 2
    assert total(load(force=True)) == 2  # the refresh button

    # Auto-refresh fetches (reads the cache) rather than forces: the frontend's configuration.
    with urllib.request.urlopen(f"{superset.url}/login/", timeout=60) as response:
        page = html.unescape(response.read().decode())
    mode = re.search(r'"DASHBOARD_AUTO_REFRESH_MODE":\s*"(\w+)"', page)
    assert mode is not None and mode.group(1) == "fetch", "auto-refresh mode not served"


def _broken_superset_dir(tmp_path: Path) -> Path:
    """superset/ as the repository has it, but one chart of the bundle has a key Superset's
    schema does not know (the README's example of a failed import)."""
    copy = tmp_path / "superset"
    shutil.copytree(ROOT / "superset", copy, ignore=shutil.ignore_patterns("__pycache__"))
    chart = copy / "bundle" / "charts" / "kafka_lag.yaml"
    chart.write_text(chart.read_text() + "unknown_key: 1\n")
    return copy


def _stand_in_venv(tmp_path: Path, real_venv: Path, served: Path) -> Path:
    """Superset's interpreter as it is (bootstrap.py migrates, syncs roles and imports for real:
    on this metadata database the first two find nothing to do); `superset` (whose presence
    run.sh takes for the virtualenv) fails if the start calls it, since each call would load
    the app again; `gunicorn` only records that the start got that far."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    scripts = {
        "python": f'exec "{real_venv}/bin/python" "$@"\n',
        "superset": 'echo "superset $*: the start should not load the app again" >&2; exit 1\n',
        "gunicorn": f'echo served > "{served}"\n',
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/usr/bin/env bash\n" + body)
        path.chmod(0o755)
    return bin_dir.parent


def test_a_failed_dashboard_import_fails_the_start(superset, superset_env, tmp_path):
    real_venv = Path(superset_env.get("SUPERSET_VENV") or ROOT / "var" / "superset-venv")
    served = tmp_path / "gunicorn-started"
    script = _broken_superset_dir(tmp_path) / "run.sh"
    port = free_port()
    result = subprocess.run(
        ["bash", str(script)],
        env={
            **superset_env,
            "HEARTBEAT_SECRETS_LOADED": "1",  # the world's secrets are in the environment
            "SUPERSET_VENV": str(_stand_in_venv(tmp_path, real_venv, served)),
            "SUPERSET_HOME": str(tmp_path / "home"),
            "SUPERSET_PORT": str(port),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "FAILED" in output and "charts/kafka_lag.yaml" in output, output
    assert "'unknown_key': ['Unknown field.']" in output, output
    assert not served.exists(), "the web server was started after a failed import"
    assert "superset db upgrade" in output  # the start ran up to the import
