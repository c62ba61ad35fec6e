"""Configuration without sharp edges, on the real PostgreSQL: a psql user's PG* variables never
redirect provisioning or alter the stack's roles, the cluster's own databases are refused as the
product's, a stack damaged by an older version is repaired, and a password that does not match
gives an error naming the variable. Provisioning runs against the tests' database only."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg2
import pytest

from heartbeat_ops.config import ROOT
from heartbeat_ops.database import ConfigurationError, bootstrap
from tests.support import kafka
from tests.support.db import superuser_query

pytestmark = pytest.mark.integration


ROLE_ATTRIBUTES = """
SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
       rolbypassrls, rolconfig
FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY rolname
"""


def role_attributes(stack) -> list[tuple]:
    return superuser_query(stack, ROLE_ATTRIBUTES)


def maintenance_tables(stack) -> list[tuple]:
    """What the `postgres` database holds outside the system schemas."""
    return superuser_query(
        stack,
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
        database="postgres",
    )


def public_may_connect_to_postgres(stack) -> bool:
    return superuser_query(stack, "SELECT has_database_privilege('public', 'postgres', 'CONNECT')")[
        0
    ][0]


@pytest.fixture(scope="module")
def provision(stack):
    """`heartbeat-ops provision` against the tests' database and topics of this module's own;
    never the live `heartbeat` database or the live topics."""
    suffix = uuid.uuid4().hex[:8]
    own = {
        **stack.environment(),  # HEARTBEAT_PG_DATABASE: the tests' database
        "KAFKA_TOPIC": f"test-config-{suffix}",
        "KAFKA_ALERTS_TOPIC": f"test-config-{suffix}-alerts",
    }
    assert own["HEARTBEAT_PG_DATABASE"] == stack.pg_database != "heartbeat"

    def run(env_overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **own, **env_overrides}
        return subprocess.run(
            [sys.executable, "-m", "heartbeat_ops.cli", "provision"],
            env=env, capture_output=True, text=True, timeout=180, cwd=ROOT,
        )  # fmt: skip

    yield run
    kafka.delete_topics(
        stack.kafka_bootstrap_servers, own["KAFKA_TOPIC"], own["KAFKA_ALERTS_TOPIC"]
    )


PSQL_USERS_SHELL = {
    "PGUSER": "postgres",
    "PGPASSWORD": "wrong",
    "PGDATABASE": "postgres",
    "PGHOST": "nowhere.invalid",
}


def test_psql_users_shell_variables_redirect_and_change_nothing(stack, provision):
    roles, tables = role_attributes(stack), maintenance_tables(stack)
    assert ("public", "schema_migrations") not in tables
    with_shell = provision(PSQL_USERS_SHELL)
    assert with_shell.returncode == 0, with_shell.stdout + with_shell.stderr
    assert "ignoring PGDATABASE, PGHOST, PGPASSWORD, PGUSER" in with_shell.stdout
    without = provision({})
    assert without.returncode == 0, without.stdout + without.stderr
    # Nothing went to the maintenance database; every role is as it was.
    assert maintenance_tables(stack) == tables
    assert role_attributes(stack) == roles
    assert public_may_connect_to_postgres(stack)
    flags = {name: superuser for name, superuser, *_ in roles}
    assert (flags[stack.pg_superuser], flags[stack.pg_user], flags[stack.reader_user]) == (
        True, False, False,
    )  # fmt: skip
    # The migrations went to the tests' database, and the app role kept its password.
    assert superuser_query(stack, "SELECT count(*) FROM schema_migrations")[0][0] > 0
    psycopg2.connect(stack.app_dsn).close()


def test_a_stack_damaged_by_an_old_provisioning_is_repaired(stack, provision):
    """An older version, run with PGDATABASE=postgres, revoked CONNECT on `postgres` from PUBLIC;
    every later start then failed as the stack's roles could not connect there."""
    assert public_may_connect_to_postgres(stack)
    superuser_query(stack, "REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC")
    try:
        roles = role_attributes(stack)
        result = provision({})
        assert result.returncode == 0, result.stdout + result.stderr
        assert "restored CONNECT, TEMPORARY on database postgres to PUBLIC" in result.stdout
        assert public_may_connect_to_postgres(stack)
        assert superuser_query(
            stack, "SELECT has_database_privilege('public', 'postgres', 'TEMPORARY')"
        )[0][0]
        assert role_attributes(stack) == roles
        # A repaired stack reports nothing to repair next time.
        again = provision({})
        assert again.returncode == 0 and "nothing to repair" in again.stdout, again.stdout
    finally:
        superuser_query(stack, "GRANT CONNECT, TEMPORARY ON DATABASE postgres TO PUBLIC")


def test_the_maintenance_database_is_refused_as_the_product_database(stack, provision):
    tables = maintenance_tables(stack)
    result = provision({"HEARTBEAT_PG_DATABASE": "postgres"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "configuration error: HEARTBEAT_PG_DATABASE='postgres'" in result.stderr
    assert maintenance_tables(stack) == tables and public_may_connect_to_postgres(stack)


@pytest.mark.parametrize("name", ["postgres", "template0", "template1", "superset"])
def test_reserved_databases_are_refused_before_anything_is_written(stack, name):
    with pytest.raises(ConfigurationError, match=f"HEARTBEAT_PG_DATABASE='{name}'"):
        bootstrap(stack.model_copy(update={"pg_database": name}))


def test_mismatched_app_password_names_the_variable(stack, provision):
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
