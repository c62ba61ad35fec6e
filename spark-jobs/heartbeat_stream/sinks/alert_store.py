"""The alert rules' state inside the batch's transaction: per-customer settings, trackers per
rule, episodes with their lifecycle, and their events in the outbox.

The decisions are the pure functions of transforms/episodes.py; this module only loads what they
need for the batch's watched customers and writes what they decided, a few statements per batch
whatever the number of customers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from psycopg2.extensions import cursor
from psycopg2.extras import execute_values

from heartbeat_contract.alerts import SEVERITY

from ..transforms.episodes import (
    CRITICAL_RULE,
    RULE_OF_KIND,
    THRESHOLD_RULE,
    CriticalRule,
    Episode,
    Lifecycle,
    Rule,
    Run,
    Thresholds,
    Tracker,
    advance,
    runs_by_customer,
    settle,
)
from . import alert_outbox


@dataclass(frozen=True)
class AlertRules:
    """The global settings of the rules (JobConfig.alert_rules); customer_alert_settings
    overrides the threshold bounds, the sustain and the mute per customer."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    critical: CriticalRule = field(default_factory=CriticalRule)
    cooldown: timedelta = timedelta(seconds=600)


@dataclass(frozen=True)
class CustomerSettings:
    thresholds: Thresholds
    lifecycle: Lifecycle


_SETTINGS = """
SELECT customer_id, low_bpm, high_bpm, sustain_seconds, muted_until
FROM customer_alert_settings WHERE customer_id = ANY(%s)
"""

_TRACKERS = """
SELECT customer_id, rule, kind, run_started_at, last_reading_at, extreme_bpm, readings,
       episode_open
FROM alert_trackers WHERE sink_id = %s AND customer_id = ANY(%s)
FOR UPDATE
"""

# Each customer's latest episode of each kind: one index probe per (customer, kind) on
# heart_rate_alerts_customer_kind, however many episodes a customer has had.
_LATEST_EPISODES = """
SELECT c.customer_id, e.kind, e.started_at, e.last_reading_at, e.extreme_bpm, e.readings,
       e.ended_at, e.revision, e.muted, e.threshold_bpm
FROM unnest(%(customers)s::text[]) AS c(customer_id)
CROSS JOIN unnest(%(kinds)s::text[]) AS k(kind)
CROSS JOIN LATERAL (
    SELECT * FROM heart_rate_alerts a
    WHERE a.sink_id = %(sink_id)s AND a.customer_id = c.customer_id AND a.kind = k.kind
    ORDER BY a.started_at DESC LIMIT 1
) e
"""

_UPSERT_TRACKERS = """
INSERT INTO alert_trackers (sink_id, customer_id, rule, kind, run_started_at, last_reading_at,
    extreme_bpm, readings, episode_open) VALUES %s
ON CONFLICT (sink_id, customer_id, rule) DO UPDATE SET kind = EXCLUDED.kind,
    run_started_at = EXCLUDED.run_started_at, last_reading_at = EXCLUDED.last_reading_at,
    extreme_bpm = EXCLUDED.extreme_bpm, readings = EXCLUDED.readings,
    episode_open = EXCLUDED.episode_open
"""

_DELETE_TRACKERS = """
DELETE FROM alert_trackers t USING (SELECT * FROM unnest(%s::text[], %s::text[])) AS g(c, r)
WHERE t.sink_id = %s AND t.customer_id = g.c AND t.rule = g.r
"""

_UPSERT_EPISODES = """
INSERT INTO heart_rate_alerts (sink_id, customer_id, kind, started_at, ended_at, extreme_bpm,
    readings, last_reading_at, severity, revision, muted, threshold_bpm) VALUES %s
ON CONFLICT ON CONSTRAINT heart_rate_alerts_episode DO UPDATE SET
    ended_at = EXCLUDED.ended_at, extreme_bpm = EXCLUDED.extreme_bpm,
    readings = EXCLUDED.readings, last_reading_at = EXCLUDED.last_reading_at,
    revision = EXCLUDED.revision, updated_at = now()
"""


def load_settings(
    cur: cursor, customers: list[str], rules: AlertRules
) -> dict[str, CustomerSettings]:
    """Each customer's effective settings: their own where set, else the global default."""
    default = CustomerSettings(rules.thresholds, Lifecycle(cooldown=rules.cooldown))
    settings = dict.fromkeys(customers, default)
    if not customers:
        return settings
    cur.execute(_SETTINGS, (customers,))
    for customer, low, high, sustain, muted_until in cur.fetchall():
        bounds = rules.thresholds
        settings[customer] = CustomerSettings(
            Thresholds(
                high_bpm=bounds.high_bpm if high is None else high,
                low_bpm=bounds.low_bpm if low is None else low,
                sustain=bounds.sustain if sustain is None else timedelta(seconds=sustain),
            ),
            Lifecycle(cooldown=rules.cooldown, muted_until=muted_until),
        )
    return settings


def load_trackers(
    cur: cursor, sink_id: str, customers: list[str]
) -> dict[tuple[str, str], Tracker]:
    """The runs in progress of these customers, by (customer, rule), locked for the batch."""
    cur.execute(_TRACKERS, (sink_id, customers))
    return {(row[0], row[1]): Tracker(*row[2:]) for row in cur.fetchall()}


def load_latest_episodes(
    cur: cursor, sink_id: str, customers: list[str], kinds: list[str]
) -> dict[str, dict[str, Episode]]:
    """customer -> kind -> that customer's latest episode of the kind (for the cooldown)."""
    latest: dict[str, dict[str, Episode]] = {}
    if not customers:
        return latest
    cur.execute(_LATEST_EPISODES, {"customers": customers, "kinds": kinds, "sink_id": sink_id})
    for customer, kind, *figures in cur.fetchall():
        latest.setdefault(customer, {})[kind] = Episode(kind, *figures)
    return latest


def save(
    cur: cursor,
    sink_id: str,
    trackers: dict[tuple[str, str], Tracker | None],
    episodes: Iterable[tuple[str, Episode]],
    events: Iterable[dict[str, object]],
) -> None:
    """Write trackers (None deletes), upsert episodes by (sink, customer, kind, start), and
    record the lifecycle events in the outbox."""
    gone = [key for key, tracker in trackers.items() if tracker is None]
    if gone:
        cur.execute(_DELETE_TRACKERS, ([c for c, _ in gone], [r for _, r in gone], sink_id))
    kept = [
        (sink_id, c, r, t.kind, t.run_started_at, t.last_reading_at, t.extreme_bpm, t.readings,
         t.episode_open)
        for (c, r), t in trackers.items()
        if t is not None
    ]  # fmt: skip
    if kept:
        execute_values(cur, _UPSERT_TRACKERS, kept)
    rows = [
        (sink_id, c, e.kind, e.started_at, e.ended_at, e.extreme_bpm, e.readings,
         e.last_reading_at, SEVERITY[e.kind], e.revision, e.muted, e.threshold_bpm)
        for c, e in episodes
    ]  # fmt: skip
    if rows:
        execute_values(cur, _UPSERT_EPISODES, rows)
    for event in events:
        alert_outbox.record(cur, sink_id, event)


def apply_readings(
    cur: cursor,
    sink_id: str,
    readings: Iterable[tuple[str, datetime, int, bool]],
    customers: list[str],
    rules: AlertRules,
    now: datetime | None = None,
) -> int:
    """Advance both rules for the watched `customers` from this batch's (customer, event time,
    bpm, valid) readings of them; returns how many episodes changed.

    The threshold rule sees the valid readings with each customer's own bounds; the critical
    rule sees valid readings (which break its runs) and plausible out-of-range ones.
    """
    if not customers:
        return 0
    now = now or datetime.now(UTC)
    readings = list(readings)
    settings = load_settings(cur, customers, rules)
    runs: dict[str, dict[str, list[Run]]] = {
        THRESHOLD_RULE: runs_by_customer(
            ((c, at, bpm) for c, at, bpm, valid in readings if valid),
            {c: s.thresholds for c, s in settings.items()},
        ),
        CRITICAL_RULE: runs_by_customer(
            ((c, at, bpm) for c, at, bpm, _ in readings), rules.critical
        ),
    }
    trackers = load_trackers(cur, sink_id, customers)
    advanced: dict[tuple[str, str], tuple[Tracker | None, list]] = {}
    for customer in customers:
        for rule in (THRESHOLD_RULE, CRITICAL_RULE):
            before = trackers.get((customer, rule))
            customer_runs = runs[rule].get(customer, [])
            if before is None and not customer_runs:
                continue
            own = _rule(rule, settings[customer], rules)
            advanced[(customer, rule)] = advance(
                before, customer_runs, own.sustain, own.min_readings
            )
    changed = sorted({customer for (customer, _), (_, changes) in advanced.items() if changes})
    latest = load_latest_episodes(cur, sink_id, changed, list(RULE_OF_KIND))
    touched: dict[tuple[str, str], Tracker | None] = {}
    episodes: list[tuple[str, Episode]] = []
    events: list[dict[str, object]] = []
    for (customer, rule), (after, changes) in advanced.items():
        own = _rule(rule, settings[customer], rules)
        outcome = settle(
            customer, after, changes, latest.get(customer, {}), own,
            settings[customer].lifecycle, now,
        )  # fmt: skip
        if outcome.tracker != trackers.get((customer, rule)):
            touched[(customer, rule)] = outcome.tracker
        episodes.extend((customer, episode) for episode in outcome.episodes)
        events.extend(outcome.events)
    save(cur, sink_id, touched, episodes, events)
    return len(episodes)


def _rule(name: str, settings: CustomerSettings, rules: AlertRules) -> Rule:
    return settings.thresholds if name == THRESHOLD_RULE else rules.critical
