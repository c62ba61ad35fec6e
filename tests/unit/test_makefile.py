"""The Makefile finds the stack where heartbeat-ops does: HEARTBEAT_VAR_DIR, else var/."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from heartbeat_ops.config import ROOT

pytestmark = pytest.mark.unit


def make_variable(name: str, environ: dict[str, str]) -> str:
    """The value make resolved for `name` (make's database dump, nothing run)."""
    dump = subprocess.run(
        ["make", "-n", "-p", "help"], cwd=ROOT, env=environ, capture_output=True, text=True
    ).stdout
    match = re.search(rf"^{name} := (.*)$", dump, re.MULTILINE)
    assert match, f"make defines no {name}"
    return match.group(1)


def test_the_venv_follows_heartbeat_var_dir(tmp_path):
    environ = {**os.environ, "HEARTBEAT_VAR_DIR": str(tmp_path)}
    assert make_variable("VENV", environ) == f"{tmp_path}/venv"


def test_the_venv_defaults_to_var():
    environ = {k: v for k, v in os.environ.items() if k != "HEARTBEAT_VAR_DIR"}
    assert make_variable("VENV", environ) == "var/venv"
