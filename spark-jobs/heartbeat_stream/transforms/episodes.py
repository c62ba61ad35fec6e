"""Alert episodes: sustained conditions, one episode per condition, with a lifecycle.

Pure Python, in three steps, for each rule:
- `runs_by_customer` compresses a batch's readings into each customer's runs of consecutive
  same-class readings, in event-time order (readings the rule ignores are dropped first);
- `advance` folds a customer's runs into the rule's tracker, carried between batches in
  PostgreSQL, and says which episodes opened, grew or closed (`EpisodeChange`);
- `settle` turns those changes into stored episodes and lifecycle events: a new episode, or
  the customer's last episode of the kind reopened within the cooldown (an `open` of its next
  revision, since its `resolved` went out), muted or not as the customer is at that moment.
`evolve` chains `advance` and `settle` for one customer and one rule.

Two rules: `Thresholds` (rule 'threshold': tachycardia/bradycardia over valid readings, bounds per
customer) and `CriticalRule` (rule 'critical': critical_low/high over plausible out-of-range
readings; a valid reading breaks the run, a glitch outside the plausible band is ignored).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import groupby
from operator import itemgetter
from typing import Protocol

from heartbeat_contract import MAX_VALID_BPM, MIN_VALID_BPM
from heartbeat_contract.alerts import (
    BRADYCARDIA,
    BRADYCARDIA_BELOW_BPM,
    CRITICAL_HIGH,
    CRITICAL_LOW,
    OPEN,
    PLAUSIBLE_MAX_BPM,
    PLAUSIBLE_MIN_BPM,
    RESOLVED,
    TACHYCARDIA,
    TACHYCARDIA_ABOVE_BPM,
    alert_event,
)

THRESHOLD_RULE = "threshold"
CRITICAL_RULE = "critical"
RULES = (THRESHOLD_RULE, CRITICAL_RULE)
HIGH_KINDS = (TACHYCARDIA, CRITICAL_HIGH)  # the extreme of these is the peak, else the lowest
RULE_OF_KIND = {
    TACHYCARDIA: THRESHOLD_RULE,
    BRADYCARDIA: THRESHOLD_RULE,
    CRITICAL_LOW: CRITICAL_RULE,
    CRITICAL_HIGH: CRITICAL_RULE,
}


class Rule(Protocol):
    """What `runs_of` and `evolve` need of a rule."""

    name: str
    sustain: timedelta
    min_readings: int

    def kind(self, bpm: int) -> str | None: ...

    def ignores(self, bpm: int) -> bool: ...

    def threshold_bpm(self, kind: str) -> int: ...


@dataclass(frozen=True)
class Thresholds:
    """The threshold rule with one customer's bounds (the global defaults unless set)."""

    high_bpm: int = TACHYCARDIA_ABOVE_BPM  # above this is tachycardia
    low_bpm: int = BRADYCARDIA_BELOW_BPM  # below this is bradycardia
    sustain: timedelta = timedelta(seconds=60)  # from first to latest abnormal reading
    min_readings: int = 1
    name: str = THRESHOLD_RULE

    def kind(self, bpm: int) -> str | None:
        """The abnormal class of one reading, None when normal (a threshold itself is normal)."""
        if bpm > self.high_bpm:
            return TACHYCARDIA
        if bpm < self.low_bpm:
            return BRADYCARDIA
        return None

    def ignores(self, bpm: int) -> bool:
        """Only valid readings reach this rule; none is ignored."""
        return False

    def threshold_bpm(self, kind: str) -> int:
        return self.high_bpm if kind == TACHYCARDIA else self.low_bpm


@dataclass(frozen=True)
class CriticalRule:
    """Readings outside the valid range (quarantined) but physiologically plausible, sustained
    for `sustain` (first to latest reading) AND over at least `min_readings` readings."""

    plausible_min_bpm: int = PLAUSIBLE_MIN_BPM
    plausible_max_bpm: int = PLAUSIBLE_MAX_BPM
    sustain: timedelta = timedelta(seconds=15)
    min_readings: int = 3
    name: str = CRITICAL_RULE

    def kind(self, bpm: int) -> str | None:
        """critical_low below the valid range, critical_high above it, None for a valid one."""
        if bpm < MIN_VALID_BPM:
            return CRITICAL_LOW
        if bpm > MAX_VALID_BPM:
            return CRITICAL_HIGH
        return None

    def ignores(self, bpm: int) -> bool:
        """A glitch outside the plausible band neither extends nor breaks a run."""
        return not self.plausible_min_bpm <= bpm <= self.plausible_max_bpm

    def threshold_bpm(self, kind: str) -> int:
        return MIN_VALID_BPM if kind == CRITICAL_LOW else MAX_VALID_BPM


@dataclass(frozen=True)
class Run:
    kind: str | None
    started_at: datetime
    last_reading_at: datetime
    extreme_bpm: int | None
    readings: int


@dataclass(frozen=True)
class Tracker:
    """A customer's abnormal run in progress; `episode_open` once it has lasted long enough.

    Once its run reopened an earlier episode, the tracker carries that episode's start and
    figures, so that later batches update the same episode."""

    kind: str
    run_started_at: datetime
    last_reading_at: datetime
    extreme_bpm: int
    readings: int
    episode_open: bool = False


@dataclass(frozen=True)
class EpisodeChange:
    """An episode's current state, to upsert by (customer, kind, started_at)."""

    kind: str
    started_at: datetime
    last_reading_at: datetime
    extreme_bpm: int
    readings: int
    ended_at: datetime | None = None


def runs_of(readings: Iterable[tuple[datetime, int]], rule: Rule) -> list[Run]:
    """One customer's (event time, bpm) readings, in event-time order, as runs of one class."""
    runs = []
    kept = (reading for reading in readings if not rule.ignores(reading[1]))
    for kind, group in groupby(kept, key=lambda reading: rule.kind(reading[1])):
        members = list(group)
        rates = [bpm for _, bpm in members]
        extreme = max(rates) if kind in HIGH_KINDS else min(rates) if kind else None
        runs.append(Run(kind, members[0][0], members[-1][0], extreme, len(members)))
    return runs


def runs_by_customer(
    rows: Iterable[tuple[str, datetime, int]], rule: Rule | Mapping[str, Rule]
) -> dict[str, list[Run]]:
    """A batch's (customer, event time, bpm) rows, in any order -> each customer's runs, in
    event-time order (ties broken by bpm, so the outcome never depends on arrival order).
    `rule`: one for everybody, or one per customer (a customer missing from it has no runs)."""
    runs = {}
    for customer, readings in groupby(sorted(rows), key=itemgetter(0)):
        own = rule.get(customer) if isinstance(rule, Mapping) else rule
        if own is not None:
            runs[customer] = runs_of(((at, bpm) for _, at, bpm in readings), own)
    return runs


def _more_extreme(kind: str, a: int, b: int) -> int:
    return max(a, b) if kind in HIGH_KINDS else min(a, b)


def _episode(tracker: Tracker, ended_at: datetime | None = None) -> EpisodeChange:
    return EpisodeChange(
        tracker.kind,
        tracker.run_started_at,
        tracker.last_reading_at,
        tracker.extreme_bpm,
        tracker.readings,
        ended_at,
    )


def advance(
    tracker: Tracker | None, runs: list[Run], sustain: timedelta, min_readings: int = 1
) -> tuple[Tracker | None, list[EpisodeChange]]:
    """Fold one customer's runs (in event-time order) into its tracker of one rule.

    An episode opens once its run lasts `sustain` from first to latest reading and has at least
    `min_readings` readings. Runs no newer than what the tracker has seen are stale (late data):
    they are stored as readings but do not move alert state backwards.
    """
    changes: dict[tuple[str, datetime], EpisodeChange] = {}
    for run in runs:
        if tracker and run.last_reading_at <= tracker.last_reading_at:
            continue
        if tracker and tracker.kind == run.kind:
            assert run.extreme_bpm is not None
            tracker = replace(
                tracker,
                last_reading_at=run.last_reading_at,
                extreme_bpm=_more_extreme(run.kind, tracker.extreme_bpm, run.extreme_bpm),
                readings=tracker.readings + run.readings,
            )
        else:
            if tracker and tracker.episode_open:  # the condition cleared or flipped
                changes[(tracker.kind, tracker.run_started_at)] = _episode(tracker, run.started_at)
            tracker = None
            if run.kind is not None:
                assert run.extreme_bpm is not None
                tracker = Tracker(
                    run.kind, run.started_at, run.last_reading_at, run.extreme_bpm, run.readings
                )
        if tracker and (
            tracker.episode_open
            or (
                tracker.last_reading_at - tracker.run_started_at >= sustain
                and tracker.readings >= min_readings
            )
        ):
            tracker = replace(tracker, episode_open=True)
            changes[(tracker.kind, tracker.run_started_at)] = _episode(tracker)
    return tracker, list(changes.values())


@dataclass(frozen=True)
class Episode:
    """A stored episode (a row of heart_rate_alerts) as the lifecycle needs it."""

    kind: str
    started_at: datetime
    last_reading_at: datetime
    extreme_bpm: int | None
    readings: int
    ended_at: datetime | None = None
    revision: int = 0
    muted: bool = False
    threshold_bpm: float | None = None

    @property
    def is_open(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True)
class Lifecycle:
    """What decides an episode's life beyond its rule: the cooldown and the customer's mute."""

    cooldown: timedelta = timedelta(seconds=600)
    muted_until: datetime | None = None

    def muted(self, now: datetime) -> bool:
        return self.muted_until is not None and self.muted_until > now


@dataclass(frozen=True)
class Outcome:
    """One customer's rule after a batch: the tracker to keep (None: delete), the episodes to
    upsert (by kind and started_at) and the lifecycle events to record (alert_event dicts)."""

    tracker: Tracker | None
    episodes: list[Episode] = field(default_factory=list)
    events: list[dict[str, object]] = field(default_factory=list)


def reopens(last: Episode | None, started_at: datetime, cooldown: timedelta) -> bool:
    """Whether a new episode starting at `started_at` reopens `last` (the customer's latest
    episode of the kind): it has ended, no longer than `cooldown` before."""
    return (
        last is not None
        and last.ended_at is not None
        and started_at >= last.started_at
        and started_at - last.ended_at <= cooldown
    )


def event_of(customer: str, episode: Episode, status: str) -> dict[str, object]:
    """The lifecycle event of an episode as it stands (heartbeat_contract.alerts.alert_event)."""
    return alert_event(
        customer_id=customer,
        kind=episode.kind,
        status=status,
        started_at=episode.started_at,
        last_reading_at=episode.last_reading_at,
        ended_at=episode.ended_at,
        extreme_bpm=episode.extreme_bpm,
        readings=episode.readings,
        revision=episode.revision,
        threshold_bpm=episode.threshold_bpm,
    )


def settle(
    customer: str,
    tracker: Tracker | None,
    changes: list[EpisodeChange],
    last: Mapping[str, Episode],
    rule: Rule,
    lifecycle: Lifecycle,
    now: datetime,
) -> Outcome:
    """Changes from `advance` (in order) -> stored episodes and events.

    `last`: the customer's latest stored episode per kind. A change either updates the episode
    it continues (same kind and start), or reopens the latest one of its kind when that ended
    within the cooldown (same row and alert_id, revision + 1: an `open` event of that revision,
    since its `resolved` went out when it ended), or opens a new one (an `open` event). An
    episode that ends publishes `resolved` with its revision. An episode opened or reopened
    while the customer is muted (at `now`) is recorded muted and publishes nothing until it
    reopens unmuted.
    """
    latest = dict(last)
    episodes: dict[tuple[str, datetime], Episode] = {}
    events: list[dict[str, object]] = []
    for change in changes:
        before = latest.get(change.kind)
        if before is not None and before.started_at == change.started_at:
            after = replace(
                before,
                last_reading_at=change.last_reading_at,
                extreme_bpm=change.extreme_bpm,
                readings=change.readings,
                ended_at=change.ended_at,
            )
        elif reopens(before, change.started_at, lifecycle.cooldown):
            assert before is not None and before.extreme_bpm is not None
            after = replace(
                before,
                last_reading_at=change.last_reading_at,
                extreme_bpm=_more_extreme(change.kind, before.extreme_bpm, change.extreme_bpm),
                readings=before.readings + change.readings,
                ended_at=change.ended_at,
                revision=before.revision + 1,
                muted=lifecycle.muted(now),
            )
            if not after.muted:  # its consumers were told `resolved`: the condition is back
                events.append(event_of(customer, replace(after, ended_at=None), OPEN))
            if tracker and tracker.episode_open and tracker.run_started_at == change.started_at:
                # the run goes on feeding the reopened episode in later batches
                tracker = replace(
                    tracker,
                    run_started_at=after.started_at,
                    extreme_bpm=after.extreme_bpm,
                    readings=after.readings,
                )
        else:
            after = Episode(
                change.kind,
                change.started_at,
                change.last_reading_at,
                change.extreme_bpm,
                change.readings,
                change.ended_at,
                muted=lifecycle.muted(now),
                threshold_bpm=rule.threshold_bpm(change.kind),
            )
            if not after.muted:
                events.append(event_of(customer, replace(after, ended_at=None), OPEN))
        same = before is not None and before.started_at == after.started_at
        ends_now = after.ended_at is not None and (
            not same or before.is_open or before.revision != after.revision
        )
        if ends_now and not after.muted:
            events.append(event_of(customer, after, RESOLVED))
        latest[change.kind] = after
        episodes[(after.kind, after.started_at)] = after
    return Outcome(tracker, list(episodes.values()), events)


def evolve(
    customer: str,
    tracker: Tracker | None,
    runs: list[Run],
    last: Mapping[str, Episode],
    rule: Rule,
    lifecycle: Lifecycle,
    now: datetime,
) -> Outcome:
    """One customer, one rule, one batch: `advance` then `settle`."""
    tracker, changes = advance(tracker, runs, rule.sustain, rule.min_readings)
    return settle(customer, tracker, changes, last, rule, lifecycle, now)
