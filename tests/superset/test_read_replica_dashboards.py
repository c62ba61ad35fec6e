"""The dashboards from the read replica (issue 22, README "Read replica"): a Superset started
with HEARTBEAT_PG_REPLICA (its `heartbeat` connection re-imported by bootstrap.py towards the
replica) shows, chart by chart, the numbers the tests' Superset shows from the primary.

The replica's Superset keeps its metadata in a database of its own (on the primary):
re-pointing the shared metadata's connection would move the suite's Superset to the replica."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

from heartbeat_ops import database
from heartbeat_ops.config import StackConfig
from tests.superset.dashboard_figures import every_dashboard, fixed_range, own_superset
from tests.support import figures
from tests.support.replica import Replica, replica_of
from tests.support.world import World

pytestmark = pytest.mark.integration

REPLICA_SUPERSET_DATABASE = "superset_replica_view"


@pytest.fixture(scope="module")
def standby(world: World) -> Iterator[Replica]:
    with replica_of(world) as running:
        yield running


@pytest.fixture(scope="module")
def replica_superset_env(
    world: World, stack: StackConfig, superset, standby: Replica
) -> Iterator[dict[str, str]]:
    """The environment of a Superset reading the replica, with metadata of its own (an empty
    database: its start migrates it and imports the bundle, as on a new machine)."""
    config = stack.model_copy(update={"superset_db_name": REPLICA_SUPERSET_DATABASE})
    database.bootstrap(config)  # the Superset database, owned by the Superset role
    yield {
        **os.environ,
        **world.environment(),
        "SUPERSET_DB_NAME": REPLICA_SUPERSET_DATABASE,
        "HEARTBEAT_PG_REPLICA": standby.config.pg_replica,
    }
    admin = psycopg2.connect(stack.superuser_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(REPLICA_SUPERSET_DATABASE)
            )
        )
    admin.close()


def test_dashboards_from_the_replica_equal_the_primarys(
    replica_superset_env, superset_client, sample_data, standby: Replica, stack, tmp_path: Path
):
    time_range = fixed_range(datetime.now(UTC))
    customer = sample_data.customers[0]
    caught_up = standby.caught_up()  # the sample rows (and everything before) replayed
    began = time.monotonic()
    from_primary = every_dashboard(superset_client, time_range, customer)
    primary_s = time.monotonic() - began

    with own_superset(replica_superset_env, tmp_path / "superset-home") as client:
        began = time.monotonic()
        from_replica = every_dashboard(client, time_range, customer)
        replica_s = time.monotonic() - began
        # The connection the replica's Superset imported names the replica, not the primary.
        metadata = stack.dsn(user=stack.pg_superuser, password=stack.pg_superuser_password,
                             database=REPLICA_SUPERSET_DATABASE)  # fmt: skip
        with psycopg2.connect(metadata) as conn, conn.cursor() as cur:
            cur.execute("SELECT sqlalchemy_uri FROM dbs WHERE database_name = 'heartbeat'")
            (uri,) = cur.fetchone()
        conn.close()
    assert f"@{standby.config.pg_replica}/" in uri, uri
    assert f":{stack.pg_port}/" not in uri, uri

    assert {slug: set(charts) for slug, charts in from_replica.items()} == {
        slug: set(charts) for slug, charts in from_primary.items()
    }
    # Not a comparison of nothing: the sample's readings are in the range on both.
    main = from_primary["heart-rate-monitoring"]["Total readings"]["data"]
    assert main and main[0]["total_readings"] >= sample_data.readings, main
    for slug, charts in from_replica.items():
        for name, chart in charts.items():
            assert chart == from_primary[slug][name], (slug, name)
    figures.record(
        "read replica: dashboards equal to the primary's",
        dashboards=len(from_replica),
        charts=sum(len(charts) for charts in from_replica.values()),
        rows=sum(len(c["data"]) for charts in from_replica.values() for c in charts.values()),
        caught_up_s=round(caught_up, 2),
        primary_s=round(primary_s, 1),
        replica_s=round(replica_s, 1),
    )
