"""The delivery log (notify_deliveries) and acknowledgements (alert_acks): every statement the
notifier and `heartbeat-ops notify` run against them, parameterised, one job each."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from heartbeat_contract.alerts import OPEN

from .events import Channel

ALERT_ID = re.compile(r"^[0-9a-f]{32}$")  # heartbeat_contract.alerts.alert_id's shape


@dataclass(frozen=True)
class Delivery:
    id: str
    outcome: str
    attempts: int
    alert_acknowledged: bool


def load_channels(cur) -> list[Channel]:
    cur.execute(
        "SELECT id, transport, target, format, min_severity, kinds, secret FROM notify_channels"
        " WHERE removed_at IS NULL ORDER BY id"
    )
    return [Channel(r[0], r[1], r[2], r[3], r[4], tuple(r[5]), r[6]) for r in cur.fetchall()]


def claim(
    cur, channel: Channel, event: dict[str, object], published_at: datetime | None
) -> Delivery:
    """The delivery of this event to this channel, made if new (one row per pair, ever), and
    whether its alert is acknowledged: one round trip."""
    cur.execute(
        "WITH made AS ("
        " INSERT INTO notify_deliveries (channel_id, event_id, alert_id, alert_status, kind,"
        " severity, customer_id, published_at) VALUES (%(channel)s, %(event)s, %(alert)s,"
        " %(status)s, %(kind)s, %(severity)s, %(customer)s, %(published)s)"
        " ON CONFLICT (channel_id, event_id) DO NOTHING RETURNING id, outcome, attempts),"
        " row AS (SELECT id, outcome, attempts FROM made UNION ALL"
        " SELECT id, outcome, attempts FROM notify_deliveries"
        " WHERE channel_id = %(channel)s AND event_id = %(event)s)"
        " SELECT id::text, outcome, attempts,"
        " EXISTS (SELECT 1 FROM alert_acks WHERE alert_id = %(alert)s) FROM row LIMIT 1",
        {
            "channel": channel.id, "event": event["event_id"], "alert": event["alert_id"],
            "status": event["status"], "kind": event["kind"], "severity": event["severity"],
            "customer": event["customer_id"], "published": published_at,
        },
    )  # fmt: skip
    return Delivery(*cur.fetchone())


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
