"""Pure rules of the silent-device check (README, "Silent devices"): up to which moment the topic
has been read, and whether the customers falling silent now are an ingestion outage.

Silence is judged only up to the moment R up to which the sink has read the topic: a customer
is silent when nothing of theirs reached Kafka between last_seen_at and R - SILENT_AFTER. A
backlog waiting in the topic holds R back, so a restart or a slow job never looks like silence;
an idle topic that has been read to its end puts R at the present, so silence is seen without
any message arriving.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

# A wave this small is individual devices, however large its share (one customer of one is not
# an ingestion outage).
OUTAGE_MIN_CUSTOMERS = 3


@dataclass(frozen=True)
class ReadPosition:
    """How far the sink has committed one partition (a row of sink_read_positions)."""

    next_offset: int
    last_message_at: datetime


@dataclass(frozen=True)
class PartitionExtent:
    """The partition's offsets in Kafka: the first still kept and the next to be written."""

    beginning: int
    end: int


def read_up_to(
    positions: Mapping[int, ReadPosition],
    extents: Mapping[int, PartitionExtent],
    asked_at: datetime,
    judged_before: datetime | None = None,
) -> datetime | None:
    """R, the moment up to which every partition of the topic has been read, or None when it
    cannot be told (no partitions known, or a partition holding messages the sink never read).

    A partition read to its end (as Kafka reported it at `asked_at`) has been read up to
    `asked_at`; one with messages still waiting only up to its last committed message's broker
    timestamp. An empty partition the sink never read is read to its end.

    R never goes back: not before `judged_before`, the latest R an earlier round judged at. A
    partition idle for a while that receives a message would put R back at its previous message
    until the job reads it, and an outage judged at that older moment looked over.
    """
    if not extents:
        return None
    moments = []
    for partition, extent in extents.items():
        position = positions.get(partition)
        if position is None:
            if extent.end > extent.beginning:
                return None  # messages the sink has not reached: their times are unknown
            moments.append(asked_at)
        elif position.next_offset >= extent.end:
            moments.append(asked_at)
        else:
            moments.append(position.last_message_at)
    up_to = min(moments)
    return up_to if judged_before is None else max(up_to, judged_before)


@dataclass(frozen=True)
class Census:
    """Customers not yet reported silent (silent_since IS NULL), counted at one check."""

    silent: int  # last heard before R - SILENT_AFTER
    quiet: int  # last heard before R - SILENT_AFTER / 2 (the silent included)
    active: int  # heard within the hour before R, or silent (heard even earlier)


@dataclass(frozen=True)
class Decision:
    """What one check does; at most one of open_outage and report_each holds."""

    open_outage: bool = False  # one ingestion_silent episode for the silent customers
    end_outage: bool = False  # the open ingestion_silent episode is resolved
    report_each: bool = False  # each silent customer gets a device_silent episode


def is_outage(census: Census, share: float) -> bool:
    """More than `share` of the active customers quiet together, and enough of them.

    Quiet (half the silence delay) rather than silent: devices that stop in the same second
    cross the silence delay a few checks apart (their last readings are up to a reading
    interval apart), and the first of them must not be reported one by one before the wave is
    seen."""
    return census.quiet >= OUTAGE_MIN_CUSTOMERS and census.quiet > share * census.active


def decide(census: Census, share: float, outage_open: bool, after_outage: bool = False) -> Decision:
    """The outage rule: while most active customers are quiet, their silence is one
    ingestion_silent episode (opened once the first of them is silent) and nobody is reported
    alone; when the quiet share drops to `share` or below, the outage ends.

    Customers still silent then get one more silence delay to come back (`after_outage`: the
    last outage ended less than a delay before R) before they are reported one by one: devices
    reconnect after an outage seconds apart, and each straggler paged alone and resolved a
    moment later would flood the people on call."""
    outage = is_outage(census, share)
    if outage_open:
        if outage:
            return Decision()
        return Decision(end_outage=True)
    if outage:
        return Decision(open_outage=census.silent > 0)
    return Decision(report_each=census.silent > 0 and not after_outage)
