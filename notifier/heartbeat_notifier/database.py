"""Connections to PostgreSQL as the notifier's role, shared by the delivery threads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
from psycopg2.pool import ThreadedConnectionPool


class Database:
    """A pool of connections. Most statements of the delivery log stand alone (`cursor`: a
    delivery's row is its own record); `transaction` is for the few that must not be split
    (a dead delivery and the notice it opens)."""

    def __init__(self, dsn: str, size: int) -> None:
        self._pool = ThreadedConnectionPool(1, size, dsn)

    @contextmanager
    def cursor(self) -> Iterator[psycopg2.extensions.cursor]:
        """Each statement committed on its own."""
        with self._connection(autocommit=True) as conn, conn.cursor() as cur:
            yield cur

    @contextmanager
    def transaction(self) -> Iterator[psycopg2.extensions.cursor]:
        """Every statement committed together at the end, or none (rolled back on an error)."""
        with self._connection(autocommit=False) as conn, conn, conn.cursor() as cur:
            yield cur

    @contextmanager
    def _connection(self, autocommit: bool) -> Iterator[psycopg2.extensions.connection]:
        conn = self._pool.getconn()
        broken = False
        try:
            conn.autocommit = autocommit
            yield conn
        except psycopg2.OperationalError:
            broken = True
            raise
        finally:
            self._pool.putconn(conn, close=broken or conn.closed != 0)

    def close(self) -> None:
        self._pool.closeall()
