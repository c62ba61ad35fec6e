"""The alert contract: when a reading is abnormal, and the event the job publishes when a
sustained abnormal run opens an episode (topic KAFKA_ALERTS_TOPIC, keyed by customer).

Value: a UTF-8 JSON object
    {"alert_id": "9f...", "customer_id": "C0042", "kind": "tachycardia",
     "started_at": "2026-11-29T20:16:58.123000+00:00", "extreme_bpm": 151, "readings": 64}
Delivery is at least once; `alert_id` is the same for every send of one episode, so consumers
deduplicate by it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

TACHYCARDIA = "tachycardia"
BRADYCARDIA = "bradycardia"
ALERT_KINDS = (TACHYCARDIA, BRADYCARDIA)

# Valid readings past these bounds (exclusive) are abnormal: sustained, they are a tachycardia or
# bradycardia episode. The simulator keeps every normal reading within them.
TACHYCARDIA_ABOVE_BPM = 120
BRADYCARDIA_BELOW_BPM = 50


def alert_id(customer_id: str, kind: str, started_at: datetime) -> str:
    """Stable id of an episode: one customer has one episode of a kind starting at one moment."""
    moment = started_at.astimezone(UTC).isoformat()  # the same whatever the session's TimeZone
    identity = json.dumps([customer_id, kind, moment], ensure_ascii=False)
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def alert_message(
    customer_id: str, kind: str, started_at: datetime, extreme_bpm: int, readings: int
) -> tuple[bytes, bytes]:
    """(key, value) of an alert event: keyed by customer, like the readings."""
    value = {
        "alert_id": alert_id(customer_id, kind, started_at),
        "customer_id": customer_id,
        "kind": kind,
        "started_at": started_at.isoformat(),
        "extreme_bpm": extreme_bpm,
        "readings": readings,
    }
    return customer_id.encode(), json.dumps(value, separators=(",", ":")).encode()
