"""The root-only secrets file in a container: a program that dropped root after its entrypoint
exported the file's values reads them from the environment; anywhere else, unreadable is an
error (never a silent empty set of secrets)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from heartbeat_contract.settings import read_env_file

pytestmark = pytest.mark.unit


@pytest.fixture
def unreadable(tmp_path, monkeypatch) -> Path:
    secrets = tmp_path / "secrets.env"
    secrets.write_text("HEARTBEAT_KAFKA_ADMIN_PASSWORD=x\n")

    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refused)
    monkeypatch.setattr(os, "getuid", lambda: 10001)
    return secrets


def test_a_container_program_after_its_entrypoint_reads_the_environment(unreadable, monkeypatch):
    monkeypatch.setenv("HEARTBEAT_RUN_AS", "heartbeat")
    assert read_env_file(unreadable) == {}


def test_an_unreadable_secrets_file_elsewhere_is_an_error(unreadable, monkeypatch):
    monkeypatch.delenv("HEARTBEAT_RUN_AS", raising=False)
    with pytest.raises(PermissionError):
        read_env_file(unreadable)
