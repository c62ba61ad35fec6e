"""Queries as the superuser on the tests' database: the one helper for the tests' checks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import cursor

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
    dsn = stack.admin_dsn
    if database is not None:
        dsn = stack.dsn(
            user=stack.pg_superuser, password=stack.pg_superuser_password, database=database
        )
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


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
