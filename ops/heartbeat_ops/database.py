"""Create the databases and least-privilege login roles, then migrate. Safe to run every start."""

from __future__ import annotations

import psycopg2
from psycopg2 import sql

from . import migrate
from .config import StackConfig


def _ensure_login_role(cur, name: str, password: str) -> None:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
    verb = "ALTER" if cur.fetchone() else "CREATE"
    # psycopg2 binds the password client-side; the role name is quoted as an identifier.
    cur.execute(
        sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %s").format(
            sql.Identifier(name)
        ),
        (password,),
    )


def _ensure_database(cur, name: str, owner: str | None = None) -> None:
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
    if cur.fetchone() is None:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner:
            statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        cur.execute(statement)


def bootstrap(config: StackConfig) -> list[str]:
    """Roles, databases, migrations; returns the names of migrations applied now."""
    admin = psycopg2.connect(config.superuser_dsn)
    admin.autocommit = True  # CREATE DATABASE refuses to run inside a transaction
    try:
        with admin.cursor() as cur:
            _ensure_database(cur, config.pg_database)
            _ensure_login_role(cur, config.superset_db_user, config.superset_db_password)
            _ensure_database(cur, "superset", owner=config.superset_db_user)
    finally:
        admin.close()

    applied = migrate.apply_all(
        config.dsn(user=config.pg_superuser, password=config.pg_superuser_password)
    )

    with (
        psycopg2.connect(
            config.dsn(user=config.pg_superuser, password=config.pg_superuser_password)
        ) as conn,
        conn.cursor() as cur,
    ):
        database = sql.Identifier(config.pg_database)
        cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
        cur.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO heartbeat_writer, heartbeat_readonly").format(
                database
            )
        )
        _ensure_login_role(cur, config.pg_user, config.pg_password)
        _ensure_login_role(cur, config.reader_user, config.reader_password)
        cur.execute(sql.SQL("GRANT heartbeat_writer TO {}").format(sql.Identifier(config.pg_user)))
        cur.execute(
            sql.SQL("GRANT heartbeat_readonly TO {}").format(sql.Identifier(config.reader_user))
        )
        # Belt and braces: even a mistaken grant cannot let the dashboard's role write.
        cur.execute(
            sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                sql.Identifier(config.reader_user)
            )
        )
    return [f"{m.version:03d}_{m.name}" for m in applied]
