"""`heartbeat-ops superset add-user|list-users|remove-user`, as the tests call it: the product's
own commands against the tests' Superset (its environment), never Superset's API."""

from __future__ import annotations

import re
import subprocess
import uuid

from heartbeat_ops.programs import venv_bin


def superset_command(
    env: dict[str, str], *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_bin("heartbeat-ops"), "superset", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def listed(env: dict[str, str]) -> dict[str, str]:
    """username -> roles column of `list-users`."""
    result = superset_command(env, "list-users")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:] if line.strip()]
    return {row[0]: row[1] for row in rows}


def add_viewer(env: dict[str, str]) -> tuple[str, str]:
    """A viewer created by the command: its name and the generated password it printed once."""
    name = f"nurse-{uuid.uuid4().hex[:6]}"
    result = superset_command(env, "add-user", name, "--role", "viewer")
    assert result.returncode == 0, result.stdout + result.stderr
    passwords = re.findall(r"^password: (\S+)$", result.stdout, flags=re.MULTILINE)
    assert len(passwords) == 1, result.stdout
    return name, passwords[0]
