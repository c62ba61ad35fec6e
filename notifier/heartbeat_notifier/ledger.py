"""The delivery log (notify_deliveries) and acknowledgements (alert_acks): every statement the
notifier and `heartbeat-ops notify` run against them, parameterised, one job each."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

from psycopg2.extras import Json, execute_values

from heartbeat_contract.alerts import OPEN

from .events import Channel

ALERT_ID = re.compile(r"^[0-9a-f]{32}$")  # heartbeat_contract.alerts.alert_id's shape


@dataclass(frozen=True)
class Owed:
    """A delivery the notifier has read an event for: recorded pending before the offset moves."""

    channel: Channel
    event: dict[str, object]
    published_at: datetime | None


@dataclass(frozen=True)
class Delivery:
    """A pending delivery leased to this notifier: the row, its event, and whether its alert
    is acknowledged."""

    id: str
    event: dict[str, object]
    attempts: int
    alert_acknowledged: bool


def load_channels(cur) -> list[Channel]:
    cur.execute(
        "SELECT id, transport, target, format, min_severity, kinds, secret FROM notify_channels"
        " WHERE removed_at IS NULL ORDER BY id"
    )
    return [Channel(r[0], r[1], r[2], r[3], r[4], tuple(r[5]), r[6]) for r in cur.fetchall()]


def record_owed(cur, owed: list[Owed]) -> None:
    """One pending row per (channel, event), in the order read, in one statement. A row already
    there (the event read again) is kept as it is; a row made before the log held events gets
    its event."""
    if not owed:
        return
    execute_values(
        cur,
        "INSERT INTO notify_deliveries (channel_id, event_id, alert_id, alert_status, kind,"
        " severity, customer_id, published_at, event) VALUES %s"
        " ON CONFLICT (channel_id, event_id) DO UPDATE SET event = EXCLUDED.event"
        " WHERE notify_deliveries.event IS NULL",
        [_owed_row(o) for o in owed],
        page_size=1000,
    )


def _owed_row(owed: Owed) -> tuple:
    event = owed.event
    return (owed.channel.id, event["event_id"], event["alert_id"], event["status"], event["kind"],
            event["severity"], event["customer_id"], owed.published_at, Json(event))  # fmt: skip


# A channel's due rows: pending, with their event, not leased by a live peer nor held by this
# notifier now, and no older pending row of the same alert on the channel (an alert's events
# go out in the order read: its resolve never overtakes its open). Leased in the same statement.
_LEASE_DUE = """
UPDATE notify_deliveries d SET leased_by = %(holder)s,
    leased_until = now() + make_interval(secs => %(lease)s)
FROM (
    SELECT p.id FROM notify_deliveries p
    WHERE p.channel_id = %(channel)s AND p.outcome = 'pending' AND p.event IS NOT NULL
      AND (p.leased_until IS NULL OR p.leased_until < now() OR p.leased_by = %(holder)s)
      AND p.id <> ALL(%(held)s::uuid[])
      AND NOT EXISTS (
          SELECT 1 FROM notify_deliveries o
          WHERE o.channel_id = p.channel_id AND o.alert_id = p.alert_id
            AND o.outcome = 'pending' AND o.seq < p.seq)
    ORDER BY p.seq LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) due
WHERE d.id = due.id
RETURNING d.id::text, d.event, d.attempts, d.seq,
    EXISTS (SELECT 1 FROM alert_acks k WHERE k.alert_id = d.alert_id)
"""


def lease_due(
    cur, channel_id: int, *, holder: str, held: list[str], limit: int, lease_seconds: float
) -> list[Delivery]:
    """Up to `limit` of the channel's due deliveries, oldest first, leased to `holder`.
    `held`: the ones this notifier is delivering now (its own older lease is no obstacle:
    that is a previous run of the same notifier)."""
    cur.execute(_LEASE_DUE, {"holder": holder, "lease": lease_seconds, "channel": channel_id,
                             "held": held, "limit": limit})  # fmt: skip
    rows = sorted(cur.fetchall(), key=lambda row: row[3])  # RETURNING keeps no order
    return [Delivery(r[0], r[1], r[2], r[4]) for r in rows]


def current(cur, delivery: Delivery) -> Delivery | None:
    """The leased delivery as the log has it now (its attempts, its alert's acknowledgement),
    or None once it is finished (ended by another hand, e.g. `notify remove`)."""
    cur.execute(
        "SELECT d.attempts, EXISTS (SELECT 1 FROM alert_acks k WHERE k.alert_id = d.alert_id)"
        " FROM notify_deliveries d WHERE d.id = %s AND d.outcome = 'pending'",
        (delivery.id,),
    )
    row = cur.fetchone()
    return None if row is None else replace(delivery, attempts=row[0], alert_acknowledged=row[1])


def renew_leases(cur, holder: str, ids: list[str], lease_seconds: float) -> None:
    """The deliveries still under way keep their lease."""
    if ids:
        cur.execute(
            "UPDATE notify_deliveries SET leased_until = now() + make_interval(secs => %s)"
            " WHERE id = ANY(%s::uuid[]) AND leased_by = %s AND outcome = 'pending'",
            (lease_seconds, ids, holder),
        )


def release_leases(cur, holder: str) -> None:
    """On a clean stop: whatever this notifier left pending is free for a peer at once."""
    cur.execute(
        "UPDATE notify_deliveries SET leased_until = NULL"
        " WHERE leased_by = %s AND outcome = 'pending'",
        (holder,),
    )


def backlog(cur) -> dict[int, tuple[int, float]]:
    """Per channel in use, what it still owes: (pending deliveries, seconds the oldest has
    waited). A dead receiver shows here long before its rows are dead."""
    cur.execute(
        "SELECT d.channel_id, count(*), extract(epoch FROM now() - min(d.created_at))"
        " FROM notify_deliveries d JOIN notify_channels c ON c.id = d.channel_id"
        " WHERE d.outcome = 'pending' AND c.removed_at IS NULL GROUP BY d.channel_id"
    )
    return {row[0]: (row[1], float(row[2])) for row in cur.fetchall()}


def is_acknowledged(cur, alert_id: str) -> bool:
    cur.execute("SELECT 1 FROM alert_acks WHERE alert_id = %s", (alert_id,))
    return cur.fetchone() is not None


def should_suppress(cur, event: dict[str, object]) -> bool:
    """An `open` event of an acknowledged alert tells nobody anything new; a resolve does."""
    return event["status"] == OPEN and is_acknowledged(cur, str(event["alert_id"]))


def start_attempt(cur, delivery_id: str) -> int:
    """Count the attempt before sending, so a receiver that crashes the notifier still uses up
    attempts; returns this attempt's number."""
    cur.execute(
        "UPDATE notify_deliveries SET attempts = attempts + 1, last_attempt_at = now()"
        " WHERE id = %s RETURNING attempts",
        (delivery_id,),
    )
    return cur.fetchone()[0]


def record_failure(cur, delivery_id: str, error: str, status: int | None) -> None:
    cur.execute(
        "UPDATE notify_deliveries SET last_error = %s, http_status = %s WHERE id = %s",
        (error[:1000], status, delivery_id),
    )


def finish(cur, delivery_id: str, outcome: str, status: int | None = None,
           error: str | None = None) -> float | None:  # fmt: skip
    """delivered | dead | suppressed: the row's last change. Returns, for a delivery, seconds
    from the event's publication to now (the notifier's share of alert latency)."""
    stamp = {"delivered": "delivered_at", "dead": "dead_at"}.get(outcome)
    moment = f", {stamp} = now()" if stamp else ""
    cur.execute(
        f"UPDATE notify_deliveries SET outcome = %s, http_status = coalesce(%s, http_status),"
        f" last_error = coalesce(%s, last_error){moment} WHERE id = %s AND outcome = 'pending'"
        " RETURNING extract(epoch FROM delivered_at - published_at)",
        (outcome, status, error[:1000] if error else None, delivery_id),
    )
    row = cur.fetchone()
    return None if row is None or row[0] is None else float(row[0])


@dataclass(frozen=True)
class Ack:
    alert_id: str
    acked_by: str
    acked_at: datetime
    note: str | None
    new: bool

    def as_json(self) -> dict[str, object]:
        return {
            "alert_id": self.alert_id,
            "acked_by": self.acked_by,
            "acked_at": self.acked_at.isoformat(),
            "note": self.note,
            "new": self.new,
        }


def acknowledge(cur, alert_id: str, acked_by: str, note: str | None) -> Ack:
    """Record who has seen the alert; the first acknowledgement stands."""
    if not ALERT_ID.match(alert_id):
        raise ValueError(f"{alert_id!r} is not an alert id (32 hex digits)")
    if not acked_by.strip():
        raise ValueError("who acknowledges is required")
    cur.execute(
        "INSERT INTO alert_acks (alert_id, acked_by, note) VALUES (%s, %s, %s)"
        " ON CONFLICT (alert_id) DO NOTHING RETURNING acked_by, acked_at, note",
        (alert_id, acked_by.strip(), note),
    )
    row = cur.fetchone()
    if row is not None:
        return Ack(alert_id, row[0], row[1], row[2], True)
    cur.execute("SELECT acked_by, acked_at, note FROM alert_acks WHERE alert_id = %s", (alert_id,))
    row = cur.fetchone()
    return Ack(alert_id, row[0], row[1], row[2], False)
