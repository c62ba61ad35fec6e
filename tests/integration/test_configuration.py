"""Configuration without sharp edges, on the real PostgreSQL: a psql user's PGUSER/PGPASSWORD never
alter the stack's roles, and a password that does not match gives an error naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg2
import pytest

from heartbeat_ops.config import ROOT
from heartbeat_ops.database import ConfigurationError, bootstrap
from tests.support.db import superuser_query

pytestmark = pytest.mark.integration


def superuser_flags(stack) -> dict[str, bool]:
    roles = [stack.pg_superuser, stack.pg_user, stack.reader_user]
    query = "SELECT rolname, rolsuper FROM pg_roles WHERE rolname = ANY(%s)"
    return dict(superuser_query(stack, query, roles))


def provision(env_overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`heartbeat-ops provision` in the session's environment: the tests' world (conftest)."""
    env = {**os.environ, **env_overrides}
    return subprocess.run(
        [sys.executable, "-m", "heartbeat_ops.cli", "provision"],
        env=env, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip


def test_psql_users_shell_variables_change_no_role(stack):
    before = superuser_flags(stack)
    result = provision({"PGUSER": "postgres", "PGPASSWORD": "a-psql-users-password"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ignoring PGPASSWORD, PGUSER" in result.stdout
    assert superuser_flags(stack) == before == {
        stack.pg_superuser: True, stack.pg_user: False, stack.reader_user: False,
    }  # fmt: skip
    # The app role still accepts its generated password: nothing reset it.
    psycopg2.connect(stack.app_dsn).close()


def test_mismatched_app_password_names_the_variable(stack):
    result = provision({"HEARTBEAT_APP_PASSWORD": "not-the-roles-password"})
    assert result.returncode == 2
    assert "HEARTBEAT_APP_PASSWORD" in result.stderr and "rejects the password" in result.stderr
    psycopg2.connect(stack.app_dsn).close()  # and the role was left alone


def test_stack_role_may_not_be_the_superuser(stack):
    with pytest.raises(ConfigurationError, match="HEARTBEAT_APP_USER=postgres names the superuser"):
        bootstrap(stack.model_copy(update={"pg_user": stack.pg_superuser}))


def test_wrong_superuser_password_names_the_variable(stack, monkeypatch):
    monkeypatch.setenv("POSTGRES_PASSWORD", "wrong")
    with pytest.raises(ConfigurationError, match="POSTGRES_PASSWORD"):
        bootstrap(stack.model_copy(update={"pg_superuser_password": "wrong"}))
