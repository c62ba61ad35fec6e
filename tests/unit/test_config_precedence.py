"""The stack's roles never come from libpq's generic variables (PGUSER/PGPASSWORD)."""

from __future__ import annotations

import os
import re
import stat

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


def test_scrub_keeps_location_and_drops_identity(monkeypatch):
    for name, value in {"PGUSER": "postgres", "PGPASSWORD": "x", "PGOPTIONS": "-c a=b",
                        "PGPORT": "5442", "PGHOST": "localhost"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    dropped = config.scrub_ambient_libpq()
    assert {"PGUSER", "PGPASSWORD", "PGOPTIONS"} <= set(dropped)
    assert "PGUSER" not in os.environ and os.environ["PGPORT"] == "5442"
