"""The alert contract: the kinds of episode, their severity, and the lifecycle events the job
publishes on the alerts topic (KAFKA_ALERTS_TOPIC), keyed by customer like the readings.

An episode is one sustained condition of one customer (or, for `ingestion_silent`, of the whole
feed: customer_id ALL_CUSTOMERS; for `delivery_failing`, of one notification channel: customer_id
ALL_CUSTOMERS, see `delivery_failing_event`). Its `alert_id` is stable: the same for every event
and every send of that episode. Each episode publishes an `open` event when it opens and a
`resolved` event when it ends; an episode that reopens within the cooldown keeps its alert_id and
publishes nothing on reopening, and its next end publishes `resolved` again with a higher
`revision`.
Delivery is at least once: consumers deduplicate by `event_id` (alert_id, status, revision).

Value: a UTF-8 JSON object, for example (one per kind in README, "Alert events")
    {"event_id": "5d1c...", "alert_id": "9f3a...", "status": "open", "revision": 0,
     "kind": "critical_low", "severity": "critical", "customer_id": "C0042",
     "started_at": "2026-11-29T20:16:58.123000+00:00", "ended_at": null,
     "last_reading_at": "2026-11-29T20:17:20.123000+00:00", "extreme_bpm": 35, "readings": 23,
     "threshold_bpm": 40, "baseline_bpm": null}
- started_at: event time of the first reading of the condition (device_silent: the last reading
  before the silence; elevated_resting: the start of the first elevated day);
- ended_at: null while open; the event time that ended it once resolved;
- extreme_bpm: the peak (high kinds) or the lowest (low kinds) bpm; for elevated_resting the
  highest daily resting rate; null for device_silent and ingestion_silent;
- readings: readings in the episode (days for elevated_resting, customers for ingestion_silent,
  0 for device_silent, dead deliveries for delivery_failing);
- threshold_bpm: the bound that was crossed, as set for this customer when it opened
  (elevated_resting: baseline + margin); baseline_bpm: the customer's baseline (elevated_resting).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime

# Kinds of episode.
TACHYCARDIA = "tachycardia"  # valid readings above the customer's high bound, sustained
BRADYCARDIA = "bradycardia"  # valid readings below the customer's low bound, sustained
CRITICAL_HIGH = "critical_high"  # readings above 180 bpm (quarantined) but plausible, sustained
CRITICAL_LOW = "critical_low"  # readings below 40 bpm (quarantined) but plausible, sustained
ELEVATED_RESTING = "elevated_resting"  # resting rate above the personal baseline, day after day
DEVICE_SILENT = "device_silent"  # a customer who was sending stopped reaching Kafka
INGESTION_SILENT = "ingestion_silent"  # most active customers fell silent together: an outage
# A notification channel's deliveries go dead or wait too long: the people it serves are told
# nothing. Raised by the notifier itself (never published on the topic) for the other channels.
DELIVERY_FAILING = "delivery_failing"
ALERT_KINDS = (
    TACHYCARDIA,
    BRADYCARDIA,
    CRITICAL_HIGH,
    CRITICAL_LOW,
    ELEVATED_RESTING,
    DEVICE_SILENT,
    INGESTION_SILENT,
    DELIVERY_FAILING,
)

WARNING = "warning"
CRITICAL = "critical"
SEVERITIES = (WARNING, CRITICAL)
SEVERITY = {
    TACHYCARDIA: WARNING,
    BRADYCARDIA: WARNING,
    ELEVATED_RESTING: WARNING,
    DEVICE_SILENT: WARNING,
    CRITICAL_HIGH: CRITICAL,
    CRITICAL_LOW: CRITICAL,
    INGESTION_SILENT: CRITICAL,  # nobody's readings arrive: every customer is unwatched
    DELIVERY_FAILING: CRITICAL,  # a channel reaches nobody: its people miss every alert
}

OPEN = "open"
RESOLVED = "resolved"
STATUSES = (OPEN, RESOLVED)

# The customer_id of an episode about the whole feed (ingestion_silent).
ALL_CUSTOMERS = "*"

# Valid readings past these bounds (exclusive) are abnormal: sustained, they are a tachycardia or
# bradycardia episode. Defaults for every customer; `heartbeat-ops alerts set` overrides them per
# customer. The simulator keeps every normal reading within them.
TACHYCARDIA_ABOVE_BPM = 120
BRADYCARDIA_BELOW_BPM = 50
# Quarantined out-of-range readings within this band are physiologically possible and count
# toward critical episodes; outside it they are sensor glitches (0, 2, 300 bpm).
PLAUSIBLE_MIN_BPM = 20
PLAUSIBLE_MAX_BPM = 250


def alert_id(customer_id: str, kind: str, started_at: datetime) -> str:
    """Stable id of an episode: one customer has one episode of a kind starting at one moment.
    sql/008's heartbeat_alert_id computes the same (tested)."""
    moment = started_at.astimezone(UTC).isoformat()  # the same whatever the session's TimeZone
    identity = json.dumps([customer_id, kind, moment], ensure_ascii=False)
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def event_id(alert: str, status: str, revision: int) -> str:
    """Stable id of one lifecycle event of an episode: what consumers deduplicate by."""
    return hashlib.sha256(f"{alert}/{status}/{revision}".encode()).hexdigest()[:32]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def alert_event(
    *,
    customer_id: str,
    kind: str,
    status: str,
    started_at: datetime,
    last_reading_at: datetime,
    ended_at: datetime | None = None,
    extreme_bpm: int | None = None,
    readings: int = 0,
    revision: int = 0,
    threshold_bpm: float | None = None,
    baseline_bpm: float | None = None,
    identity: str | None = None,
) -> dict[str, object]:
    """The event as a dict, in the documented key order; `encode_event` makes its bytes.
    `identity`: the alert id of an episode that is not a customer's (delivery_failing), else
    computed from customer, kind and start."""
    if kind not in SEVERITY:
        raise ValueError(f"unknown alert kind {kind!r}; one of {', '.join(ALERT_KINDS)}")
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    identity = identity or alert_id(customer_id, kind, started_at)
    return {
        "event_id": event_id(identity, status, revision),
        "alert_id": identity,
        "status": status,
        "revision": revision,
        "kind": kind,
        "severity": SEVERITY[kind],
        "customer_id": customer_id,
        "started_at": _iso(started_at),
        "ended_at": _iso(ended_at),
        "last_reading_at": _iso(last_reading_at),
        "extreme_bpm": extreme_bpm,
        "readings": readings,
        "threshold_bpm": threshold_bpm,
        "baseline_bpm": baseline_bpm,
    }


def encode_event(event: Mapping[str, object]) -> tuple[bytes, bytes]:
    """(key, value) bytes of an event: keyed by customer, compact JSON."""
    value = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    return str(event["customer_id"]).encode(), value


def alert_message(
    customer_id: str, kind: str, started_at: datetime, extreme_bpm: int, readings: int
) -> tuple[bytes, bytes]:
    """(key, value) of an episode's `open` event with only its opening figures (tests, tools)."""
    event = alert_event(
        customer_id=customer_id,
        kind=kind,
        status=OPEN,
        started_at=started_at,
        last_reading_at=started_at,
        extreme_bpm=extreme_bpm,
        readings=readings,
    )
    return encode_event(event)


def delivery_failing_id(channel_id: int, started_at: datetime) -> str:
    """The alert id of channel `channel_id`'s failure that started at `started_at`: the
    channel's, not the whole feed's, so two channels failing at one moment are two alerts."""
    return alert_id(f"channel {channel_id}", DELIVERY_FAILING, started_at)


def delivery_failing_event(
    *,
    identity: str,
    channel_id: int,
    channel: str,
    status: str,
    started_at: datetime,
    last_failed_at: datetime,
    ended_at: datetime | None,
    dead: int,
    last_error: str | None,
) -> dict[str, object]:
    """The notifier's notice that channel `channel_id` reaches nobody (its deliveries go dead,
    or wait too long): started_at is its first sign of failing, last_reading_at its latest,
    readings its dead deliveries while open; plus `channel_id`, `channel` (which channel,
    without secrets) and `last_error` (what the latest sign was). `identity`: its alert id
    (delivery_failing_id, kept with the failure)."""
    event = alert_event(
        customer_id=ALL_CUSTOMERS,
        kind=DELIVERY_FAILING,
        status=status,
        started_at=started_at,
        last_reading_at=last_failed_at,
        ended_at=ended_at,
        readings=dead,
        identity=identity,
    )
    return {**event, "channel_id": channel_id, "channel": channel, "last_error": last_error}
