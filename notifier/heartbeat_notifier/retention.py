"""The delivery log's retention: the notifier deletes its finished deliveries (delivered, dead,
suppressed) older than HEARTBEAT_RAW_RETENTION_DAYS, on start and every
HEARTBEAT_RETENTION_INTERVAL_SECONDS, in chunks so no statement holds many row locks. Pending
deliveries stay whatever their age (they are work to do), and the database refuses the
notifier's role any other delete (sql/013)."""

from __future__ import annotations

import logging
import time

import psycopg2

from .database import Database

log = logging.getLogger("heartbeat.notifier.retention")

FINISHED = ("delivered", "dead", "suppressed")

_PRUNE = """
DELETE FROM notify_deliveries WHERE id = ANY(ARRAY(
    SELECT id FROM notify_deliveries
    WHERE outcome = ANY(%s) AND created_at < now() - make_interval(days => %s)
    LIMIT %s))
"""


def prune(db: Database, days: int, chunk: int = 10_000) -> int:
    """Delete finished deliveries older than `days` days; returns how many."""
    total = 0
    while True:
        with db.cursor() as cur:  # autocommit: each chunk is its own transaction
            cur.execute(_PRUNE, (list(FINISHED), days, chunk))
            deleted = cur.rowcount
        total += deleted
        if deleted < chunk:
            return total


class RetentionClock:
    """Runs `prune` when due: at the first call, then every `interval` seconds; a failure is
    logged and retried at the next interval (deliveries never wait on it)."""

    def __init__(self, db: Database, days: int, interval: float) -> None:
        self.db = db
        self.days = days
        self.interval = interval
        self._next_at = 0.0

    def tick(self) -> int:
        if time.monotonic() < self._next_at:
            return 0
        self._next_at = time.monotonic() + self.interval
        try:
            deleted = prune(self.db, self.days)
        except psycopg2.Error as error:
            log.warning("delivery log retention failed: %s", error)
            return 0
        if deleted:
            log.info("delivery log retention: %d finished deliveries deleted", deleted)
        return deleted
