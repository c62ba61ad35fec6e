"""Alert episodes: runs from a batch and the state machine across batches (plain Python)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from heartbeat_stream.transforms.episodes import (
    BRADYCARDIA,
    TACHYCARDIA,
    EpisodeChange,
    Run,
    Thresholds,
    Tracker,
    advance,
    runs_by_customer,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 29, 20, 0, 0, tzinfo=UTC)
SUSTAIN = timedelta(seconds=60)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def series(customer: str, start: int, rates: list[int]) -> list[tuple]:
    """One reading per second from `start`."""
    return [(customer, at(start + i), bpm) for i, bpm in enumerate(rates)]


def runs_of(rows) -> list[Run]:
    """One customer's runs."""
    (runs,) = runs_by_customer(rows, Thresholds()).values()
    return runs


def test_runs_group_consecutive_readings_by_class():
    rows = series("A", 0, [70, 130, 150, 140, 70, 45, 40, 90])
    assert runs_of(rows) == [
        Run(None, at(0), at(0), None, 1),
        Run(TACHYCARDIA, at(1), at(3), 150, 3),
        Run(None, at(4), at(4), None, 1),
        Run(BRADYCARDIA, at(5), at(6), 40, 2),
        Run(None, at(7), at(7), None, 1),
    ]


def test_runs_are_per_customer():
    rows = series("B", 0, [150, 150]) + series("A", 0, [70]) + series("B", 2, [70])
    assert runs_by_customer(rows, Thresholds()) == {
        "A": [Run(None, at(0), at(0), None, 1)],
        "B": [Run(TACHYCARDIA, at(0), at(1), 150, 2), Run(None, at(2), at(2), None, 1)],
    }


def test_runs_follow_event_time_not_arrival_order():
    rows = list(reversed(series("A", 0, [130, 130, 70])))
    assert [(r.kind, r.readings) for r in runs_of(rows)] == [(TACHYCARDIA, 2), (None, 1)]


def test_thresholds_are_exclusive():
    rows = series("A", 0, [120, 50, 121, 49])
    assert [r.kind for r in runs_of(rows)] == [None, TACHYCARDIA, BRADYCARDIA]


def test_sustained_high_rate_opens_one_episode_and_closes_it():
    runs = runs_of(series("A", 0, [70] * 5 + [150] * 180 + [80] * 5))
    tracker, changes = advance(None, runs, SUSTAIN)
    assert tracker is None
    assert changes == [EpisodeChange(TACHYCARDIA, at(5), at(184), 150, 180, ended_at=at(185))]


def test_short_burst_opens_nothing():
    runs = runs_of(series("A", 0, [150] * 60 + [70]))  # 59 s from first to last
    assert advance(None, runs, SUSTAIN) == (None, [])


def test_episode_spanning_several_batches():
    tracker = None
    opened = []
    for batch in range(4):  # four batches of 50 s at 140..143 bpm
        runs = runs_of(series("A", batch * 50, [140 + batch] * 50))
        tracker, changes = advance(tracker, runs, SUSTAIN)
        opened.extend(changes)
    assert tracker is not None and tracker.episode_open
    # one episode, first reported in the batch where it crossed 60 s, then updated
    assert {(c.kind, c.started_at) for c in opened} == {(TACHYCARDIA, at(0))}
    assert opened[-1] == EpisodeChange(TACHYCARDIA, at(0), at(199), 143, 200)
    tracker, changes = advance(tracker, runs_of(series("A", 200, [75])), SUSTAIN)
    assert tracker is None
    assert changes == [EpisodeChange(TACHYCARDIA, at(0), at(199), 143, 200, ended_at=at(200))]


def test_flicker_at_the_threshold_never_opens_an_episode():
    runs = runs_of(series("A", 0, [121, 120] * 120))  # four minutes of flicker
    assert advance(None, runs, SUSTAIN) == (None, [])


def test_flip_from_high_to_low_closes_one_and_starts_another():
    runs = runs_of(series("A", 0, [150] * 61 + [45] * 61))
    tracker, changes = advance(None, runs, SUSTAIN)
    assert changes == [
        EpisodeChange(TACHYCARDIA, at(0), at(60), 150, 61, ended_at=at(61)),
        EpisodeChange(BRADYCARDIA, at(61), at(121), 45, 61),
    ]
    assert tracker == Tracker(BRADYCARDIA, at(61), at(121), 45, 61, episode_open=True)


def test_stale_runs_do_not_move_state_backwards():
    tracker = Tracker(TACHYCARDIA, at(0), at(100), 150, 100, episode_open=True)
    late_normal = Run(None, at(50), at(50), None, 1)
    assert advance(tracker, [late_normal], SUSTAIN) == (tracker, [])
