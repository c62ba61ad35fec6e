"""The driver's one PostgreSQL connection, kept for the job's life and reopened once it breaks.

Opening a connection costs a TCP and SCRAM handshake (milliseconds); a live feed commits several
batches a second, so the commit and the alert outbox share one long-lived connection instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import psycopg2
from psycopg2.extensions import connection

T = TypeVar("T")


class Database:
    def __init__(self, params: dict[str, object]) -> None:
        self._params = params
        self._conn: connection | None = None

    def run(self, work: Callable[[connection], T]) -> T:
        """Run `work` on the connection; a connection the failure left broken is dropped, so
        the next call (a retry) reconnects."""
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(**self._params)
        try:
            return work(self._conn)
        except psycopg2.Error:
            if self._conn.closed:
                self._conn = None
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
