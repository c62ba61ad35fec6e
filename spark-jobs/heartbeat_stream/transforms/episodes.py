"""Alert episodes: sustained tachycardia or bradycardia, one episode per sustained condition.

Pure Python, two steps. `runs_by_customer` compresses a batch's readings into each customer's
runs of consecutive same-class readings, in event-time order.
`advance` folds a customer's runs into its tracker, carried between batches in PostgreSQL, and
says which episodes opened, grew or closed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import groupby
from operator import itemgetter

from heartbeat_contract.alerts import (
    BRADYCARDIA,
    BRADYCARDIA_BELOW_BPM,
    TACHYCARDIA,
    TACHYCARDIA_ABOVE_BPM,
)


@dataclass(frozen=True)
class Thresholds:
    high_bpm: int = TACHYCARDIA_ABOVE_BPM  # above this is tachycardia
    low_bpm: int = BRADYCARDIA_BELOW_BPM  # below this is bradycardia
    sustain: timedelta = timedelta(seconds=60)  # from first to latest abnormal reading

    def kind(self, bpm: int) -> str | None:
        """The abnormal class of one reading, None when normal (a threshold itself is normal)."""
        if bpm > self.high_bpm:
            return TACHYCARDIA
        if bpm < self.low_bpm:
            return BRADYCARDIA
        return None


@dataclass(frozen=True)
class Run:
    kind: str | None
    started_at: datetime
    last_reading_at: datetime
    extreme_bpm: int | None
    readings: int


@dataclass(frozen=True)
class Tracker:
    """A customer's abnormal run in progress; `episode_open` once it has lasted long enough."""

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


def runs_of(readings: Iterable[tuple[datetime, int]], thresholds: Thresholds) -> list[Run]:
    """One customer's (event time, bpm) readings, in event-time order, as runs of one class."""
    runs = []
    for kind, group in groupby(readings, key=lambda reading: thresholds.kind(reading[1])):
        members = list(group)
        rates = [bpm for _, bpm in members]
        extreme = max(rates) if kind == TACHYCARDIA else min(rates) if kind else None
        runs.append(Run(kind, members[0][0], members[-1][0], extreme, len(members)))
    return runs


def runs_by_customer(
    rows: Iterable[tuple[str, datetime, int]], thresholds: Thresholds
) -> dict[str, list[Run]]:
    """A batch's (customer, event time, bpm) rows, in any order -> each customer's runs, in
    event-time order (ties broken by bpm, so the outcome never depends on arrival order)."""
    return {
        customer: runs_of(((at, bpm) for _, at, bpm in readings), thresholds)
        for customer, readings in groupby(sorted(rows), key=itemgetter(0))
    }


def _more_extreme(kind: str, a: int, b: int) -> int:
    return max(a, b) if kind == TACHYCARDIA else min(a, b)


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
    tracker: Tracker | None, runs: list[Run], sustain: timedelta
) -> tuple[Tracker | None, list[EpisodeChange]]:
    """Fold one customer's runs (in event-time order) into its tracker.

    Runs no newer than what the tracker has seen are stale (late data): they are stored as
    readings but do not move alert state backwards.
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
            tracker.episode_open or tracker.last_reading_at - tracker.run_started_at >= sustain
        ):
            tracker = replace(tracker, episode_open=True)
            changes[(tracker.kind, tracker.run_started_at)] = _episode(tracker)
    return tracker, list(changes.values())
