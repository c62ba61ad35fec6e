"""Backups (issue 21): load data (the history loader, alert settings, episodes, a notification
channel, Superset's metadata), `heartbeat-ops backup`, then a fresh PostgreSQL cluster of its own
(a wiped machine: new initdb, new generated passwords, provisioned as `make infra` does),
`heartbeat-ops restore`: row counts, rollups = SQL, episodes, per-customer settings equal, and
every dashboard shows the same numbers through Superset; a second restore into the now non-empty
database is refused without --force.

The source is a database of its own in the tests' world, so the shared test database is never
replaced. Its Superset metadata is made by the first Superset started on it (migrated, bundle
imported, as on a new machine), which shows the dashboards before the backup; another on the
restored stack (its restored metadata, that stack's own secrets) shows them after; every chart's
query is compared, for one fixed time range and one customer. It needs nothing of the Superset
tests' shared Superset, so a parallel run hands it out on its own."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

from heartbeat_ops import database
from heartbeat_ops.backup import row_counts
from heartbeat_ops.config import StackConfig, var_dir
from heartbeat_ops.programs import venv_bin
from tests.superset.catalogue import (
    CUSTOMER_DASHBOARD_SLUG,
    DASHBOARD_SLUG,
)
from tests.superset.dashboard_figures import every_dashboard, fixed_range, own_superset
from tests.support import figures
from tests.support.rollups import rollup_mismatches
from tests.support.world import World

pytestmark = pytest.mark.integration

OPS = venv_bin("heartbeat-ops")
TAG = "backup-history"
SOURCE_DATABASE, SOURCE_SUPERSET = "heartbeat_backup_source", "superset_backup_source"
# Rows compared whole, table by table, before and after (ordered by their key).
COMPARED = {
    "heart_rate_alerts": "alert_id",
    "customer_alert_settings": "customer_id",
    "notify_channels": "id",
    "sink_read_positions": "sink_id, kafka_topic, kafka_partition",
    "alert_trackers": "sink_id, customer_id, rule",
    "schema_migrations": "version",
}
# What the restore itself changes: the job's batch bookkeeping is forgotten (README).
FORGOTTEN = ("sink_progress", "stage_messages")
# The customer the customer dashboard is opened for: one with its own alert settings.
CUSTOMER = "B0001"


def ops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OPS, *args], env=env, capture_output=True, text=True, timeout=600)


def environment(world: World, config: StackConfig, var: Path) -> dict[str, str]:
    """A child's view of a stack: the world's location and secrets, this test's databases, its
    own var folder (secrets file, checkpoint) so nothing of the worktree's var/ is touched."""
    var.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        **world.environment(),
        "HEARTBEAT_PG_DATABASE": config.pg_database,
        "SUPERSET_DB_NAME": config.superset_db_name,
        "HEARTBEAT_VAR_DIR": str(var),
        "HEARTBEAT_CHECKPOINT_DIR": str(var / "checkpoints" / "stream"),
        # Superset's virtualenv stays the installed one (run.sh looks under the var folder).
        "SUPERSET_VENV": str(var_dir() / "superset-venv"),
    }


def snapshot(config: StackConfig, database_name: str | None = None) -> dict[str, object]:
    """Everything compared: counts of every table, the compared tables' rows, rollup checks."""
    conn = psycopg2.connect(
        config.dsn(user=config.pg_superuser, password=config.pg_superuser_password,
                   database=database_name)
    )  # fmt: skip
    try:
        with conn.cursor() as cur:
            seen: dict[str, object] = {"counts": row_counts(cur)}
            for table, key in COMPARED.items():
                cur.execute(
                    sql.SQL("SELECT * FROM {} ORDER BY " + key).format(sql.Identifier(table))
                )
                seen[table] = [tuple(map(str, row)) for row in cur.fetchall()]
            seen["rollup_mismatches"] = rollup_mismatches(cur, TAG)
            cur.execute("SELECT count(*), sum(readings), sum(sum_bpm) FROM heart_rate_hour")
            seen["hour_rollups"] = cur.fetchone()
    finally:
        conn.close()
    return seen


def shown(env: dict[str, str], home: Path, time_range: str) -> dict[str, object]:
    """Every dashboard as a Superset started on `env`'s stack shows it (the customer one for
    CUSTOMER; dashboard_figures.every_dashboard); then stopped."""
    with own_superset(env, home) as client:
        return every_dashboard(client, time_range, CUSTOMER)


@pytest.fixture(scope="module")
def source(world: World, stack: StackConfig, tmp_path_factory) -> Iterator[dict[str, object]]:
    """A provisioned stack's databases with a small history, settings, a channel and Superset
    metadata, and every dashboard as a Superset on it shows them; dropped afterwards."""
    config = stack.model_copy(
        update={"pg_database": SOURCE_DATABASE, "superset_db_name": SOURCE_SUPERSET}
    )
    database.bootstrap(config)
    env = environment(world, config, tmp_path_factory.mktemp("source-var"))
    loaded = ops(env, "load-history", "--customers", "12", "--days", "0.5", "--interval", "30",
                 "--tag", TAG, "--prefix", "B")  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    for args in (("alerts", "set", "B0001", "--high", "150", "--low", "45"),
                 ("alerts", "set", "B0002", "--sustain", "90", "--baseline-alerts", "off"),
                 ("notify", "add-webhook", "http://127.0.0.1:9/backup-test")):  # fmt: skip
        result = ops(env, *args)
        assert result.returncode == 0, result.stderr
    with psycopg2.connect(config.admin_dsn) as conn, conn.cursor() as cur:
        # The job's bookkeeping as a running job leaves it: a committed batch, a read position.
        cur.execute("INSERT INTO sink_progress (sink_id, last_batch_id) VALUES ('backup', 41)")
        cur.execute("INSERT INTO sink_read_positions VALUES ('backup', 'readings', 0, 1234, now())")
    conn.close()
    superset_dsn = config.dsn(user=config.superset_db_user, password=config.superset_db_password,
                              database=SOURCE_SUPERSET)  # fmt: skip
    with psycopg2.connect(superset_dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE ab_user_marker (username text PRIMARY KEY)")
        cur.execute("INSERT INTO ab_user_marker VALUES ('nurse'), ('analyst')")
    conn.close()
    time_range = fixed_range(datetime.now(UTC))
    began = time.monotonic()
    dashboards = shown(env, tmp_path_factory.mktemp("source-superset"), time_range)
    yield {"config": config, "env": env, "before": snapshot(config), "time_range": time_range,
           "dashboards": dashboards, "dashboards_s": time.monotonic() - began}  # fmt: skip
    admin = psycopg2.connect(stack.superuser_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        for name in (SOURCE_DATABASE, SOURCE_SUPERSET):
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))  # fmt: skip
    admin.close()


@pytest.fixture(scope="module")
def fresh_world(world: World) -> Iterator[World]:
    """A second PostgreSQL cluster, initdb'd now with its own generated passwords, provisioned
    as `make infra` provisions a new machine (no Kafka needed for a restore). Beside the tests'
    world, where the `postgres` user that runs initdb can reach it."""
    world = World.create(world.root.with_name(f"{world.root.name}-restore"))
    try:
        world.start_postgres()
        database.bootstrap(world.config)
        yield world
    finally:
        world.stop()


def test_backup_restore_into_a_fresh_stack(source, fresh_world, tmp_path):
    before = source["before"]
    assert before["counts"]["heart_rate_readings"] > 10_000
    assert before["counts"]["heart_rate_alerts"] > 0  # the history's episodes
    assert len(before["customer_alert_settings"]) == 2
    assert before["rollup_mismatches"] == []

    backup_dir = tmp_path / "backup"
    began = time.monotonic()
    made = ops(source["env"], "backup", str(backup_dir))
    backup_s = time.monotonic() - began
    assert made.returncode == 0, made.stderr
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    assert manifest["row_counts"] == before["counts"]
    assert manifest["migrations"] == [f"{int(v):03d}_{n}" for v, n, *_ in
                                      before["schema_migrations"]]  # fmt: skip
    assert manifest["superset_row_counts"]["ab_user_marker"] == 2
    assert manifest["superset_row_counts"]["slices"] >= 2  # the dashboards' charts
    assert {"sink_id": "backup", "topic": "readings", "partition": 0,
            "next_offset": 1234} in manifest["read_positions"]  # fmt: skip
    assert stat.S_IMODE((backup_dir / "secrets.env").stat().st_mode) == 0o600
    assert stat.S_IMODE(backup_dir.stat().st_mode) == 0o700
    backed_up = dict(
        line.split("=", 1)
        for line in (backup_dir / "secrets.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert backed_up["POSTGRES_PASSWORD"] == source["config"].pg_superuser_password
    assert ops(source["env"], "backup", str(backup_dir)).returncode == 1  # never overwritten

    target = fresh_world.config
    target_var = tmp_path / "target-var"
    env = environment(fresh_world, target, target_var)
    checkpoint = Path(env["HEARTBEAT_CHECKPOINT_DIR"])
    (checkpoint / "offsets").mkdir(parents=True)  # a job's checkpoint, ahead of the backup
    began = time.monotonic()
    restored = ops(env, "restore", str(backup_dir))
    restore_s = time.monotonic() - began
    assert restored.returncode == 0, restored.stdout + restored.stderr
    figures.record(
        "backup and restore",
        readings=before["counts"]["heart_rate_readings"],
        dump_bytes=manifest["files"]["heartbeat.dump"]["bytes"],
        backup_s=round(backup_s, 1),
        restore_s=round(restore_s, 1),
    )
    assert not checkpoint.exists()
    # A machine without secrets takes the backup's (0600); the running cluster keeps its own
    # passwords (the environment), and the restored stack still works with them.
    assert (target_var / "secrets.env").read_text() == (backup_dir / "secrets.env").read_text()
    assert stat.S_IMODE((target_var / "secrets.env").stat().st_mode) == 0o600

    after = snapshot(target)
    expected_counts = {**before["counts"], **dict.fromkeys(FORGOTTEN, 0)}
    assert after["counts"] == expected_counts
    for table in COMPARED:
        if table != "schema_migrations":
            assert after[table] == before[table], table
    assert [row[:3] for row in after["schema_migrations"]] == [
        row[:3] for row in before["schema_migrations"]
    ]
    assert after["rollup_mismatches"] == []
    assert after["hour_rollups"] == before["hour_rollups"]
    superset = snapshot_superset(target)
    assert superset == [("analyst",), ("nurse",)]
    # Every dashboard, through a Superset on the restored metadata and data, with this stack's
    # own secrets: every chart shows what it showed before the backup.
    began = time.monotonic()
    dashboards = shown(env, tmp_path / "restored-superset", source["time_range"])
    figures.record(
        "backup and restore: dashboards compared",
        charts=sum(len(charts) for charts in dashboards.values()),
        rows=sum(len(c["data"]) for charts in dashboards.values() for c in charts.values()),
        before_s=round(source["dashboards_s"], 1),
        after_s=round(time.monotonic() - began, 1),
    )
    before_dashboards = source["dashboards"]
    assert {slug: set(charts) for slug, charts in dashboards.items()} == {
        slug: set(charts) for slug, charts in before_dashboards.items()
    }
    # Not a comparison of nothing: the range holds the whole history, the customer's settings.
    total = before_dashboards[DASHBOARD_SLUG]["Total readings"]["data"]
    assert total == [{"total_readings": before["counts"]["heart_rate_readings"]}]
    assert before_dashboards[CUSTOMER_DASHBOARD_SLUG]["Alert settings"]["data"], "no settings"
    for slug, charts in dashboards.items():
        for name, chart in charts.items():
            assert chart == before_dashboards[slug][name], (slug, name)
    # The least-privilege roles work on the restored database: the job writes, the reader reads.
    with psycopg2.connect(target.reader_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM heart_rate_readings")
        assert cur.fetchone()[0] == before["counts"]["heart_rate_readings"]
    conn.close()
    with psycopg2.connect(target.app_dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO sink_progress (sink_id, last_batch_id) VALUES ('after', 0)")
    conn.close()

    # Now the database holds data: a second restore is refused, and changes nothing.
    refused = ops(env, "restore", str(backup_dir))
    assert refused.returncode == 1
    assert "not empty" in refused.stderr and "--force" in refused.stderr
    assert snapshot(target)["counts"]["sink_progress"] == 1
    forced = ops(env, "restore", str(backup_dir), "--force")
    assert forced.returncode == 0, forced.stderr
    assert snapshot(target)["counts"] == expected_counts


def snapshot_superset(config: StackConfig) -> list[tuple]:
    with psycopg2.connect(
        config.dsn(user=config.superset_db_user, password=config.superset_db_password,
                   database=config.superset_db_name)
    ) as conn, conn.cursor() as cur:  # fmt: skip
        cur.execute("SELECT username FROM ab_user_marker ORDER BY username")
        rows = cur.fetchall()
    conn.close()
    return rows
