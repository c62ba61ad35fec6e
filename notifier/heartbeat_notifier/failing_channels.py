"""A channel that reaches nobody tells nobody by itself, so the notifier says so on the others:
a critical `delivery_failing` notice (heartbeat_contract.alerts.delivery_failing_event), opened
by the channel's first dead delivery or by a pending delivery that has waited
HEARTBEAT_NOTIFY_LATE_SECONDS, counted but never sent again while the channel goes on failing (it
pages once, not once per delivery), and resolved once the channel has delivered and shown no
sign of failing for HEARTBEAT_NOTIFY_RECOVERED_AFTER_SECONDS (or once it is removed). Its
notifications are rows of the same delivery log, recorded in the transaction that changes the
notice, so a crash cannot open a notice that nobody is owed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from heartbeat_contract.alerts import (
    DELIVERY_FAILING,
    OPEN,
    RESOLVED,
    delivery_failing_event,
    delivery_failing_id,
)  # fmt: skip

from . import ledger
from .events import Channel

log = logging.getLogger(__name__)
_COLUMNS = "alert_id, channel_id, channel, started_at, last_failed_at, dead, last_error, ended_at"


@dataclass(frozen=True)
class Failure:
    """One row of notify_channel_failures: a channel's failure, open while ended_at is None."""

    alert_id: str
    channel_id: int
    channel: str
    started_at: datetime
    last_failed_at: datetime
    dead: int
    last_error: str | None
    ended_at: datetime | None

    def event(self) -> dict[str, object]:
        return delivery_failing_event(
            identity=self.alert_id,
            channel_id=self.channel_id,
            channel=self.channel,
            status=OPEN if self.ended_at is None else RESOLVED,
            started_at=self.started_at,
            last_failed_at=self.last_failed_at,
            ended_at=self.ended_at,
            dead=self.dead,
            last_error=self.last_error,
        )


def label(channel: Channel) -> str:
    """Which channel, without its secrets: a webhook's URL path and query can be a credential
    (Slack's incoming webhooks), so only its scheme and host are named."""
    if channel.transport == "webhook":
        parts = urlsplit(channel.target)
        return f"{channel.id} (webhook to {parts.scheme}://{parts.hostname})"
    return f"{channel.id} ({channel.transport} to {channel.target})"


def owed_for(failure: Failure, channels: list[Channel]) -> list[ledger.Owed]:
    """The notice's deliveries: every other channel that takes it. None at all is logged: the
    failure is then only on /metrics and the dashboards."""
    event = failure.event()
    owed = [
        ledger.Owed(channel, event, None)
        for channel in channels
        if channel.id != failure.channel_id and channel.wants(event)
    ]
    if not owed:
        log.error("channel %s is failing (%s) and no other channel takes %s notices: nobody is"
                  " told", failure.channel, failure.last_error, DELIVERY_FAILING)  # fmt: skip
    return owed


def announce(cur, failures: list[Failure], channels: list[Channel]) -> None:
    """Record the deliveries the notices opened or resolved owe (owed_for), in the caller's
    transaction: the notice's change and what it owes stand or fall together."""
    ledger.record_owed(cur, [owed for failure in failures for owed in owed_for(failure, channels)])


def failed(cur, channel: Channel, error: str | None, *, dead: int) -> Failure | None:
    """A sign that `channel` is failing (`dead`: the dead deliveries it adds): recorded in its
    open notice, or opens one (returned, to be announced). Two workers opening one at once: the
    unique index keeps the first, and the second's sign is then recorded in it."""
    if _recorded(cur, channel, error, dead):
        return None
    started = datetime.now(UTC)
    identity = delivery_failing_id(channel.id, started)
    cur.execute(
        f"INSERT INTO notify_channel_failures ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s,"
        f" NULL) ON CONFLICT DO NOTHING RETURNING {_COLUMNS}",
        (identity, channel.id, label(channel), started, started, dead, error),
    )
    row = cur.fetchone()
    if row is None:  # opened meanwhile by another worker's transaction, committed since
        _recorded(cur, channel, error, dead)
        return None
    return Failure(*row)


def _recorded(cur, channel: Channel, error: str | None, dead: int) -> bool:
    """Add the sign to the channel's open notice; False when it has none."""
    cur.execute(
        "UPDATE notify_channel_failures SET dead = dead + %s, last_failed_at = now(),"
        " last_error = coalesce(%s, last_error) WHERE channel_id = %s AND ended_at IS NULL",
        (dead, error, channel.id),
    )
    return cur.rowcount > 0


def late(cur, late_seconds: float) -> dict[int, str]:
    """Channels in use whose oldest pending delivery has waited `late_seconds` (from the
    channels' backlog, ledger.backlog): channel -> what is late."""
    return {
        channel: f"{pending} deliveries waiting, the oldest for {oldest:.0f} s"
        for channel, (pending, oldest) in ledger.backlog(cur).items()
        if oldest > late_seconds
    }


def resolve_recovered(cur, quiet_seconds: float, late_seconds: float) -> list[Failure]:
    """End the notices of channels that delivered after their last sign of failing, which is
    at least `quiet_seconds` old, and have no delivery waiting `late_seconds`."""
    cur.execute(
        "UPDATE notify_channel_failures f SET ended_at = now()"
        " WHERE f.ended_at IS NULL AND f.last_failed_at < now() - make_interval(secs => %s)"
        " AND EXISTS (SELECT 1 FROM notify_deliveries d WHERE d.channel_id = f.channel_id"
        "   AND d.outcome = 'delivered' AND d.delivered_at > f.last_failed_at)"
        " AND NOT EXISTS (SELECT 1 FROM notify_deliveries p WHERE p.channel_id = f.channel_id"
        "   AND p.outcome = 'pending' AND p.created_at < now() - make_interval(secs => %s))"
        f" RETURNING {_COLUMNS}",
        (quiet_seconds, late_seconds),
    )
    return [Failure(*row) for row in cur.fetchall()]


def resolve_removed(cur, channel_id: int) -> list[Failure]:
    """A removed channel is failing no more: its notice ends (and its resolve is sent)."""
    cur.execute(
        "UPDATE notify_channel_failures SET ended_at = now()"
        f" WHERE channel_id = %s AND ended_at IS NULL RETURNING {_COLUMNS}",
        (channel_id,),
    )
    return [Failure(*row) for row in cur.fetchall()]


def failing(cur) -> set[int]:
    """The channels with an open notice (for /metrics)."""
    cur.execute("SELECT channel_id FROM notify_channel_failures WHERE ended_at IS NULL")
    return {row[0] for row in cur.fetchall()}
