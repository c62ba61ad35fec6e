"""Alert events as the notifier reads them, and which channels an event is for."""

from __future__ import annotations

import json
from dataclasses import dataclass

from heartbeat_contract.alerts import ALERT_KINDS, CRITICAL, SEVERITY, STATUSES


class MalformedEvent(ValueError):
    """A message on the alerts topic that is not a lifecycle event of the contract."""


def parse_event(value: bytes | None) -> dict[str, object]:
    """The event dict of a Kafka value (heartbeat_contract.alerts.encode_event's bytes)."""
    try:
        event = json.loads(value or b"")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise MalformedEvent(f"not JSON: {error}") from None
    if not isinstance(event, dict):
        raise MalformedEvent("not a JSON object")
    for key in ("event_id", "alert_id", "status", "kind", "customer_id"):
        if not isinstance(event.get(key), str) or not event[key]:
            raise MalformedEvent(f"missing {key}")
    if event["kind"] not in ALERT_KINDS or event["status"] not in STATUSES:
        raise MalformedEvent(f"unknown kind or status: {event['kind']}/{event['status']}")
    event.setdefault("severity", SEVERITY[str(event["kind"])])
    return event


@dataclass(frozen=True)
class Channel:
    """One row of notify_channels: where to send, and which events."""

    id: int
    transport: str  # webhook | email
    target: str  # URL or e-mail address
    format: str  # json | slack | email
    min_severity: str
    kinds: tuple[str, ...]
    secret: str | None

    def wants(self, event: dict[str, object]) -> bool:
        """Events of at least the channel's severity, of its kinds (none listed: every kind)."""
        if self.min_severity == CRITICAL and event.get("severity") != CRITICAL:
            return False
        return not self.kinds or event.get("kind") in self.kinds
