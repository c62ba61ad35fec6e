"""The read replica's pure parts: pg_hba's replication rules, the setting's address, and where
Superset's `heartbeat` connection points (README, "Read replica")."""

from __future__ import annotations

import importlib.util

import pytest
from pydantic import ValidationError

from heartbeat_ops import replica
from heartbeat_ops.config import ROOT, StackConfig

pytestmark = pytest.mark.unit

INITDB_HBA = """\
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
# Allow replication connections from localhost, by a user with the
# replication privilege.
local   replication     all                                     peer
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
"""


def test_replication_is_allowed_to_the_replication_role_from_its_sources_only(tmp_path):
    hba = tmp_path / "pg_hba.conf"
    hba.write_text(INITDB_HBA)
    assert replica.restrict_replication_hba(hba, "heartbeat_replication", replica.LOOPBACK_SOURCES)
    rules = [line.split() for line in hba.read_text().splitlines() if not line.startswith("#")]
    replication = [rule for rule in rules if rule[1] == "replication"]
    assert replication == [
        ["host", "replication", "heartbeat_replication", "127.0.0.1/32", "scram-sha-256"],
        ["host", "replication", "heartbeat_replication", "::1/128", "scram-sha-256"],
    ]
    # Everything else is kept as it was.
    assert ["host", "all", "all", "127.0.0.1/32", "scram-sha-256"] in rules
    # Idempotent: a second start changes nothing.
    text = hba.read_text()
    assert not replica.restrict_replication_hba(
        hba, "heartbeat_replication", replica.LOOPBACK_SOURCES
    )
    assert hba.read_text() == text


def test_a_compose_primary_takes_replication_from_the_compose_network(tmp_path):
    hba = tmp_path / "pg_hba.conf"
    hba.write_text(INITDB_HBA)
    replica.restrict_replication_hba(hba, "heartbeat_replication", ("samenet",))
    active = [line for line in hba.read_text().splitlines() if not line.startswith("#")]
    assert [line for line in active if "replication" in line] == [
        "host replication heartbeat_replication samenet scram-sha-256"
    ]


def test_the_replica_setting_is_host_and_port():
    config = StackConfig.resolve({}).model_copy(update={"pg_replica": "localhost:5433"})
    assert (config.replica_host, config.replica_port) == ("localhost", 5433)
    assert "host=localhost port=5433" in config.dsn(user="u", password="p", replica=True)
    assert f"port={config.pg_port} " in config.dsn(user="u", password="p")
    off = StackConfig.resolve({})
    assert (off.pg_replica, off.replica_port) == ("", 0)


@pytest.mark.parametrize("value", ["5433", "localhost", "localhost:0", "localhost:x"])
def test_a_replica_setting_without_a_port_is_refused(monkeypatch, value):
    monkeypatch.setenv("HEARTBEAT_PG_REPLICA", value)
    with pytest.raises(ValidationError, match="HEARTBEAT_PG_REPLICA"):
        StackConfig.resolve({})


def _bootstrap():
    spec = importlib.util.spec_from_file_location("bootstrap", ROOT / "superset" / "bootstrap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_supersets_connection_reads_the_replica_when_there_is_one(monkeypatch):
    bootstrap = _bootstrap()
    monkeypatch.setenv("HEARTBEAT_PG_HOST", "postgres")
    monkeypatch.setenv("HEARTBEAT_PG_PORT", "5432")
    monkeypatch.setenv("HEARTBEAT_PG_DATABASE", "heartbeat")
    monkeypatch.delenv("HEARTBEAT_PG_REPLICA", raising=False)
    assert bootstrap.reader_uri().endswith("@postgres:5432/heartbeat")
    monkeypatch.setenv("HEARTBEAT_PG_REPLICA", "postgres-replica:5432")
    assert bootstrap.reader_uri().endswith("@postgres-replica:5432/heartbeat")
