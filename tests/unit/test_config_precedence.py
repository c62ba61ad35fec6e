"""The stack's location and roles never come from libpq's variables (PGDATABASE, PGUSER, ...),
and a HEARTBEAT_* name no part of the stack reads is refused rather than ignored."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys

import pytest
from pydantic import ValidationError

from heartbeat_contract.settings import ROOT, Settings
from heartbeat_ops import config
from heartbeat_stream.config import JobConfig

pytestmark = pytest.mark.unit

STORED = {"HEARTBEAT_APP_PASSWORD": "from-file", "POSTGRES_PASSWORD": "admin-from-file"}


def test_ambient_pguser_and_pgpassword_are_ignored(monkeypatch):
    monkeypatch.setenv("PGUSER", "postgres")
    monkeypatch.setenv("PGPASSWORD", "psql-users-password")
    monkeypatch.delenv("HEARTBEAT_APP_USER", raising=False)
    monkeypatch.delenv("HEARTBEAT_APP_PASSWORD", raising=False)
    resolved = config.load(STORED)
    assert (resolved.pg_user, resolved.pg_password) == ("heartbeat_app", "from-file")
    # Nor does the job read them, under the stack or under a data engineer's spark-submit.
    assert not {"PGUSER", "PGPASSWORD"} & set(resolved.environment())
    assert JobConfig().pg_user == "heartbeat_app"


def test_every_setting_is_documented():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", readme))
    assert {field.alias for field in Settings.model_fields.values()} - documented == set()


def test_a_bad_value_names_its_variable(monkeypatch):
    monkeypatch.setenv("HEARTBEAT_MAX_OFFSETS_PER_TRIGGER", "lots")
    with pytest.raises(ValidationError, match="HEARTBEAT_MAX_OFFSETS_PER_TRIGGER"):
        JobConfig()


def test_explicit_heartbeat_variables_win(monkeypatch):
    monkeypatch.setenv("HEARTBEAT_APP_USER", "hb_app_2")
    monkeypatch.setenv("HEARTBEAT_APP_PASSWORD", "explicit")
    resolved = config.load(STORED)
    assert (resolved.pg_user, resolved.pg_password) == ("hb_app_2", "explicit")
    assert config.source_of("HEARTBEAT_APP_PASSWORD", STORED) == (
        "the environment variable HEARTBEAT_APP_PASSWORD"
    )


def test_legacy_secrets_file_key_is_carried_over(monkeypatch, tmp_path):
    monkeypatch.setenv("HEARTBEAT_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("HEARTBEAT_APP_PASSWORD", raising=False)
    (tmp_path / "secrets.env").write_text("PGPASSWORD=old-generated\nPOSTGRES_PASSWORD=x\n")
    assert config.load().pg_password == "old-generated"
    stored = config.ensure_secrets()
    assert stored["HEARTBEAT_APP_PASSWORD"] == "old-generated" and "PGPASSWORD" not in stored
    assert stat.S_IMODE(os.stat(tmp_path / "secrets.env").st_mode) == 0o600


def test_scrub_drops_every_libpq_variable_location_included(monkeypatch):
    ambient = {"PGUSER": "postgres", "PGPASSWORD": "x", "PGOPTIONS": "-c a=b", "PGPORT": "5442",
               "PGHOST": "nowhere.invalid", "PGDATABASE": "postgres", "PGSERVICE": "svc",
               "PG_BIN_DIR": "/usr/lib/postgresql/15/bin"}  # fmt: skip
    for name, value in ambient.items():
        monkeypatch.setenv(name, value)
    dropped = config.scrub_ambient_libpq()
    assert set(dropped) >= {"PGUSER", "PGPASSWORD", "PGOPTIONS", "PGPORT", "PGHOST", "PGDATABASE",
                            "PGSERVICE"}  # fmt: skip
    assert not [name for name in os.environ if name.startswith("PG") and name != "PG_BIN_DIR"]
    assert os.environ["PG_BIN_DIR"] == "/usr/lib/postgresql/15/bin"  # ours, not libpq's


def test_the_stack_location_is_read_only_from_heartbeat_names(monkeypatch):
    for name in ("HEARTBEAT_PG_HOST", "HEARTBEAT_PG_PORT", "HEARTBEAT_PG_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGHOST", "nowhere.invalid")
    monkeypatch.setenv("PGPORT", "1")
    monkeypatch.setenv("PGDATABASE", "postgres")
    ambient = config.load(STORED)
    assert (ambient.pg_host, ambient.pg_port, ambient.pg_database) == (
        "localhost", 5432, "heartbeat",
    )  # fmt: skip
    monkeypatch.setenv("HEARTBEAT_PG_HOST", "db.internal")
    monkeypatch.setenv("HEARTBEAT_PG_PORT", "5433")
    monkeypatch.setenv("HEARTBEAT_PG_DATABASE", "heartbeat_2")
    explicit = config.load(STORED)
    assert (explicit.pg_host, explicit.pg_port, explicit.pg_database) == (
        "db.internal", 5433, "heartbeat_2",
    )  # fmt: skip
    # Children get the heartbeat names, never libpq's.
    assert explicit.environment()["HEARTBEAT_PG_DATABASE"] == "heartbeat_2"
    assert not [name for name in explicit.environment() if name.startswith("PG")]


def test_an_unknown_heartbeat_variable_is_refused_with_its_name(monkeypatch):
    monkeypatch.setenv("HEARTBEAT_ROLLUP_TRIGGER_INTERVAL", "5 seconds")  # a retired setting
    with pytest.raises(ValidationError, match="HEARTBEAT_ROLLUP_TRIGGER_INTERVAL"):
        JobConfig()
    with pytest.raises(ValidationError, match="HEARTBEAT_ROLLUP_TRIGGER_INTERVAL"):
        config.load(STORED)


def test_known_non_settings_and_the_test_suites_names_are_accepted(monkeypatch):
    monkeypatch.setenv("HEARTBEAT_TEST_DATABASE", "heartbeat_test")
    monkeypatch.setenv("HEARTBEAT_SECRETS_LOADED", "1")
    monkeypatch.setenv("HEARTBEAT_DASHBOARD_REFRESH_SECONDS", "10")
    assert JobConfig().pg_database


def test_heartbeat_ops_refuses_an_unknown_setting_by_name(tmp_path):
    env = {**os.environ, "HEARTBEAT_VAR_DIR": str(tmp_path), "HEARTBEAT_JDBC_WRITER": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "heartbeat_ops.cli", "logs"],
        env=env, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "configuration error" in result.stderr and "HEARTBEAT_JDBC_WRITER" in result.stderr


def sink_writers(defaults_to: int) -> int:
    """How many tasks the sink lets append a batch to the stage, given Spark's parallelism."""
    from types import SimpleNamespace

    from heartbeat_stream.sinks.readings_sink import ReadingsSink

    staged = SimpleNamespace(
        sparkSession=SimpleNamespace(sparkContext=SimpleNamespace(defaultParallelism=defaults_to))
    )
    return ReadingsSink(JobConfig())._writers(staged)


@pytest.mark.parametrize(
    ("value", "writers"), [(None, 2), ("", 2), ("5", 5), ("1", 1)], ids=["unset", "empty", "5", "1"]
)
def test_jdbc_writers_default_to_sparks_cores_and_empty_counts_as_unset(
    monkeypatch, value, writers
):
    if value is None:
        monkeypatch.delenv("HEARTBEAT_JDBC_WRITERS", raising=False)
    else:
        monkeypatch.setenv("HEARTBEAT_JDBC_WRITERS", value)
    assert sink_writers(defaults_to=2) == writers


def test_an_empty_value_counts_as_unset(monkeypatch):
    """`VAR=` in a shell or compose file means the default (or the stored secret), not ''."""
    for name in ("HEARTBEAT_PG_DATABASE", "HEARTBEAT_PG_PORT", "HEARTBEAT_APP_PASSWORD",
                 "HEARTBEAT_MAX_OFFSETS_PER_TRIGGER", "HEARTBEAT_APP_USER"):  # fmt: skip
        monkeypatch.setenv(name, "")
    resolved = config.load(STORED)
    assert (resolved.pg_database, resolved.pg_port) == ("heartbeat", 5432)
    assert (resolved.pg_user, resolved.pg_password) == ("heartbeat_app", "from-file")
    assert JobConfig().max_offsets_per_trigger == 250_000
