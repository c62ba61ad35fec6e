"""Queries as the superuser on the tests' database: the one helper for the tests' checks."""

from __future__ import annotations

from collections.abc import Mapping

import psycopg2
from psycopg2 import sql

from heartbeat_ops.config import StackConfig


def superuser_query(
    stack: StackConfig, query: str | sql.Composable, *params: object
) -> list[tuple]:
    """Run one statement in its own committed transaction; its rows ([] if it returns none).

    Positional `params` fill %s placeholders; a single mapping fills %(name)s ones.
    """
    args = params[0] if len(params) == 1 and isinstance(params[0], Mapping) else params
    conn = psycopg2.connect(stack.admin_dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()
