"""Episode rows written straight into heart_rate_alerts for the dashboard tests (no job): times
relative to the database's clock, severity from the contract."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from psycopg2.extensions import cursor
from psycopg2.extras import execute_values

from heartbeat_contract.alerts import SEVERITY

_INSERT = """
INSERT INTO heart_rate_alerts (sink_id, customer_id, kind, severity, started_at, ended_at,
                               extreme_bpm, readings, last_reading_at, threshold_bpm, muted)
VALUES %s
"""
# ended_at: now() - NULL is NULL, an open episode.
_ROW = (
    "(%s, %s, %s, %s, now() - %s::interval, now() - %s::interval, %s, %s,"
    " now() - %s::interval, %s, %s)"
)


@dataclass(frozen=True)
class Episode:
    """One episode; `*_ago`: how long before the database's now()."""

    customer: str
    kind: str
    started_ago: timedelta
    last_reading_ago: timedelta
    ended_ago: timedelta | None = None  # None: still open
    extreme_bpm: int | None = None
    readings: int = 0
    threshold_bpm: float | None = None
    muted: bool = False
    severity: str | None = None  # None: the kind's, as the contract says


def insert_episodes(cur: cursor, sink_id: str, episodes: Iterable[Episode]) -> None:
    """Write the episodes under `sink_id` (delete them with it afterwards)."""
    rows = [
        (sink_id, e.customer, e.kind, e.severity or SEVERITY[e.kind], e.started_ago, e.ended_ago,
         e.extreme_bpm, e.readings, e.last_reading_ago, e.threshold_bpm, e.muted)
        for e in episodes
    ]  # fmt: skip
    execute_values(cur, _INSERT, rows, template=_ROW)


def ago(*, h: float = 0, m: float = 0, s: float = 0) -> timedelta:
    """A short way to write how long ago: ago(h=2), ago(m=45), ago(s=20)."""
    return timedelta(hours=h, minutes=m, seconds=s)
