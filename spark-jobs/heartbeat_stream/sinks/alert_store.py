"""Load and save the alerting state (trackers) and episodes, inside the batch's transaction."""

from __future__ import annotations

from collections.abc import Iterable

from psycopg2.extensions import cursor
from psycopg2.extras import execute_values

from ..transforms.episodes import EpisodeChange, Run, Thresholds, Tracker, advance


def load_trackers(cur: cursor, sink_id: str, customers: list[str]) -> dict[str, Tracker]:
    cur.execute(
        "SELECT customer_id, kind, run_started_at, last_reading_at, extreme_bpm, readings,"
        " episode_open FROM alert_trackers WHERE sink_id = %s AND customer_id = ANY(%s)"
        " FOR UPDATE",
        (sink_id, customers),
    )
    return {row[0]: Tracker(*row[1:]) for row in cur.fetchall()}


def save(
    cur: cursor,
    sink_id: str,
    trackers: dict[str, Tracker | None],
    changes: Iterable[tuple[str, EpisodeChange]],
) -> None:
    """Write trackers (None deletes) and upsert episodes by (sink, customer, kind, start)."""
    gone = [customer for customer, tracker in trackers.items() if tracker is None]
    if gone:
        cur.execute(
            "DELETE FROM alert_trackers WHERE sink_id = %s AND customer_id = ANY(%s)",
            (sink_id, gone),
        )
    kept = [
        (
            sink_id,
            c,
            t.kind,
            t.run_started_at,
            t.last_reading_at,
            t.extreme_bpm,
            t.readings,
            t.episode_open,
        )
        for c, t in trackers.items()
        if t is not None
    ]
    if kept:
        execute_values(
            cur,
            """
            INSERT INTO alert_trackers (sink_id, customer_id, kind, run_started_at,
                last_reading_at, extreme_bpm, readings, episode_open) VALUES %s
            ON CONFLICT (sink_id, customer_id) DO UPDATE SET kind = EXCLUDED.kind,
                run_started_at = EXCLUDED.run_started_at,
                last_reading_at = EXCLUDED.last_reading_at, extreme_bpm = EXCLUDED.extreme_bpm,
                readings = EXCLUDED.readings, episode_open = EXCLUDED.episode_open""",
            kept,
        )
    episodes = [
        (sink_id, c, e.kind, e.started_at, e.ended_at, e.extreme_bpm, e.readings, e.last_reading_at)
        for c, e in changes
    ]
    if episodes:
        execute_values(
            cur,
            """
            INSERT INTO heart_rate_alerts (sink_id, customer_id, kind, started_at, ended_at,
                extreme_bpm, readings, last_reading_at) VALUES %s
            ON CONFLICT ON CONSTRAINT heart_rate_alerts_episode DO UPDATE SET
                ended_at = EXCLUDED.ended_at, extreme_bpm = EXCLUDED.extreme_bpm,
                readings = EXCLUDED.readings, last_reading_at = EXCLUDED.last_reading_at,
                updated_at = now()""",
            episodes,
        )


def apply_runs(
    cur: cursor, sink_id: str, runs: dict[str, list[Run]], thresholds: Thresholds
) -> int:
    """Advance every customer with runs in this batch; returns how many episodes changed."""
    if not runs:
        return 0
    trackers = load_trackers(cur, sink_id, list(runs))
    touched: dict[str, Tracker | None] = {}
    changes: list[tuple[str, EpisodeChange]] = []
    for customer, customer_runs in runs.items():
        before = trackers.get(customer)
        after, episode_changes = advance(before, customer_runs, thresholds.sustain)
        if after != before:
            touched[customer] = after
        changes.extend((customer, change) for change in episode_changes)
    save(cur, sink_id, touched, changes)
    return len(changes)
