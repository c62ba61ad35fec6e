"""Queries as the superuser on the tests' database: the one helper for the tests' checks.

The tests poll the database many times a second while a job runs. A connection per query cost
a backend start and a SCRAM login each time (4.9 ms of PostgreSQL's CPU and 3.2 ms of the test's;
py-spy found 36 s of a run's worker CPU in `connect`), so each process keeps one connection per
world's database and opens a new one only when that one was lost (a fault test restarted
PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from heartbeat_ops.config import StackConfig


def superuser_query(
    stack: StackConfig,
    query: str | sql.Composable,
    *params: object,
    database: str | None = None,
) -> list[tuple]:
    """Run one statement in its own committed transaction; its rows ([] if it returns none).

    Positional `params` fill %s placeholders; a single mapping fills %(name)s ones; without
    params the query is sent as it is (no % formatting). `database`: another database of the
    same cluster (e.g. the maintenance database `postgres`) instead of the tests' one.
    """
    args = params[0] if len(params) == 1 and isinstance(params[0], Mapping) else params or None
    if database is not None:  # another database: a connection of its own, closed after
        dsn = stack.dsn(
            user=stack.pg_superuser, password=stack.pg_superuser_password, database=database
        )
        conn = psycopg2.connect(dsn)
        try:
            return _run(conn, query, args)
        finally:
            conn.close()
    conn, reused = _kept_connection(stack.admin_dsn)
    try:
        return _run(conn, query, args)
    except psycopg2.Error:
        if not (reused and conn.closed):
            raise  # an error of the statement, or no PostgreSQL to reach: the caller's
        # The kept connection was lost since its last use (PostgreSQL restarted): a new one.
        return _run(_kept_connection(stack.admin_dsn)[0], query, args)


# dsn -> this process's connection to the tests' database, kept between queries.
_KEPT: dict[str, connection] = {}


def _kept_connection(dsn: str) -> tuple[connection, bool]:
    """The kept connection to `dsn`, opened if there is none or it was lost; True if reused."""
    kept = _KEPT.get(dsn)
    if kept is not None and not kept.closed:
        return kept, True
    _KEPT[dsn] = psycopg2.connect(dsn)
    return _KEPT[dsn], False


def _run(conn: connection, query: str | sql.Composable, args: object) -> list[tuple]:
    """One statement in its own transaction, committed (rolled back if it fails)."""
    with conn, conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchall() if cur.description else []


@contextmanager
def superuser_cursor(stack: StackConfig) -> Iterator[cursor]:
    """A cursor for several statements in one transaction, committed (or rolled back) and
    closed at the end of the block."""
    conn = psycopg2.connect(stack.admin_dsn)
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()
