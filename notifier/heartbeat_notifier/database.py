"""Connections to PostgreSQL as the notifier's role, shared by the delivery threads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
from psycopg2.pool import ThreadedConnectionPool


class Database:
    """A pool of autocommit connections: each statement of the delivery log stands alone (a
    delivery's row is its own record; nothing spans statements)."""

    def __init__(self, dsn: str, size: int) -> None:
        self._pool = ThreadedConnectionPool(1, size, dsn)

    @contextmanager
    def cursor(self) -> Iterator[psycopg2.extensions.cursor]:
        conn = self._pool.getconn()
        broken = False
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                yield cur
        except psycopg2.OperationalError:
            broken = True
            raise
        finally:
            self._pool.putconn(conn, close=broken or conn.closed != 0)

    def close(self) -> None:
        self._pool.closeall()
