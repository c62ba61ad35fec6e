"""Alert episodes: runs from a batch and the state machine across batches (plain Python)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from heartbeat_contract.alerts import CRITICAL_HIGH, CRITICAL_LOW, OPEN, RESOLVED, alert_id
from heartbeat_stream.transforms.episodes import (
    BRADYCARDIA,
    TACHYCARDIA,
    CriticalRule,
    Episode,
    EpisodeChange,
    Lifecycle,
    Run,
    Thresholds,
    Tracker,
    advance,
    evolve,
    reopens,
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


# The critical rule.
CRITICAL = CriticalRule()  # plausible 20..250, 15 s and 3 readings


def critical_runs(rows) -> list[Run]:
    (runs,) = runs_by_customer(rows, CRITICAL).values()
    return runs


def test_critical_classes_and_glitches():
    rows = series("A", 0, [70, 35, 30, 10, 300, 195, 250, 251, 19, 20, 39, 40])
    assert [(r.kind, r.readings, r.extreme_bpm) for r in critical_runs(rows)] == [
        (None, 1, None),
        (CRITICAL_LOW, 2, 30),
        (CRITICAL_HIGH, 2, 250),  # 10 and 300 are glitches: ignored, not a break
        (CRITICAL_LOW, 2, 20),  # 251 and 19 ignored
        (None, 1, None),
    ]


def test_sustained_critical_low_opens_one_episode():
    runs = critical_runs(series("A", 0, [35] * 30 + [70]))
    tracker, changes = advance(None, runs, CRITICAL.sustain, CRITICAL.min_readings)
    assert tracker is None
    assert changes == [EpisodeChange(CRITICAL_LOW, at(0), at(29), 35, 30, ended_at=at(30))]


def test_critical_needs_the_duration_and_the_readings():
    two_readings = [("A", at(0), 35), ("A", at(20), 34)]  # 20 s but only 2 readings
    assert advance(None, critical_runs(two_readings), CRITICAL.sustain, 3)[1] == []
    short = series("A", 0, [35] * 15)  # 15 readings over 14 s
    assert advance(None, critical_runs(short), CRITICAL.sustain, 3)[1] == []
    enough = series("A", 0, [35] * 16)
    assert len(advance(None, critical_runs(enough), CRITICAL.sustain, 3)[1]) == 1


def test_isolated_critical_readings_never_open():
    values = ([70] * 9 + [200]) * 30 + ([70] * 9 + [35]) * 30  # one in ten, isolated
    runs = critical_runs(series("A", 0, values))
    assert advance(None, runs, CRITICAL.sustain, CRITICAL.min_readings)[1] == []


def test_valid_reading_breaks_a_critical_run_but_a_glitch_does_not():
    broken = series("A", 0, [195] * 10 + [120] + [195] * 10)
    assert advance(None, critical_runs(broken), CRITICAL.sustain, 3)[1] == []
    glitched = series("A", 0, [195] * 10 + [0] + [195] * 10)
    (change,) = advance(None, critical_runs(glitched), CRITICAL.sustain, 3)[1]
    assert (change.kind, change.readings, change.ended_at) == (CRITICAL_HIGH, 20, None)


# The lifecycle: new episodes, events, cooldown and mute.
NOW = at(3600)
LIFE = Lifecycle(cooldown=timedelta(seconds=600))


DEFAULT_BOUNDS = Thresholds()


def evolve_rows(rows, tracker=None, last=None, rule=DEFAULT_BOUNDS, lifecycle=LIFE):
    (runs,) = runs_by_customer(rows, rule).values()
    return evolve("A", tracker, runs, last or {}, rule, lifecycle, NOW)


def test_an_episode_opens_then_resolves_with_the_same_alert_id():
    opened = evolve_rows(series("A", 0, [150] * 70))
    (episode,) = opened.episodes
    assert (episode.revision, episode.muted, episode.threshold_bpm) == (0, False, 120)
    (event,) = opened.events
    assert (event["status"], event["revision"], event["kind"]) == (OPEN, 0, TACHYCARDIA)
    assert event["alert_id"] == alert_id("A", TACHYCARDIA, at(0))
    assert event["ended_at"] is None and event["severity"] == "warning"

    resolved = evolve_rows(series("A", 70, [80]), opened.tracker, {TACHYCARDIA: episode})
    assert resolved.tracker is None
    (ended,) = resolved.episodes
    assert ended.ended_at == at(70)
    (event,) = resolved.events
    assert (event["status"], event["revision"], event["alert_id"]) == (
        RESOLVED,
        0,
        alert_id("A", TACHYCARDIA, at(0)),
    )
    assert event["event_id"] != opened.events[0]["event_id"]


def test_growing_episode_publishes_nothing_more():
    opened = evolve_rows(series("A", 0, [150] * 70))
    grown = evolve_rows(
        series("A", 70, [160] * 10), opened.tracker, {TACHYCARDIA: opened.episodes[0]}
    )
    assert grown.events == []
    (episode,) = grown.episodes
    assert (episode.started_at, episode.readings, episode.extreme_bpm) == (at(0), 80, 160)


def test_open_and_resolve_in_one_batch():
    outcome = evolve_rows(series("A", 0, [35] * 20 + [70]), rule=CRITICAL)
    assert [(e["status"], e["kind"], e["severity"]) for e in outcome.events] == [
        (OPEN, CRITICAL_LOW, "critical"),
        (RESOLVED, CRITICAL_LOW, "critical"),
    ]
    assert outcome.episodes[0].threshold_bpm == 40


def test_reopening_within_the_cooldown_keeps_the_episode_and_publishes_it_open_again():
    """The episode's `resolved` went out when it ended: on call must hear that the condition is
    back. The same alert_id (one episode, one acknowledgement), the next revision."""
    last = Episode(TACHYCARDIA, at(0), at(69), 150, 70, ended_at=at(70), threshold_bpm=120)
    reopened = evolve_rows(series("A", 300, [170] * 61), last={TACHYCARDIA: last})
    (opened,) = reopened.events
    assert (opened["status"], opened["revision"], opened["alert_id"], opened["ended_at"]) == (
        OPEN,
        1,
        alert_id("A", TACHYCARDIA, at(0)),
        None,
    )
    (episode,) = reopened.episodes
    assert (episode.started_at, episode.revision, episode.readings, episode.extreme_bpm) == (
        at(0),
        1,
        131,
        170,
    )
    assert episode.is_open
    # the tracker now feeds the reopened episode
    assert reopened.tracker.run_started_at == at(0)
    grown = evolve_rows(series("A", 361, [150] * 5), reopened.tracker, {TACHYCARDIA: episode})
    assert grown.events == [] and grown.episodes[0].readings == 136
    ended = evolve_rows(series("A", 366, [80]), grown.tracker, {TACHYCARDIA: grown.episodes[0]})
    (event,) = ended.events
    assert (event["status"], event["revision"], event["alert_id"]) == (
        RESOLVED,
        1,
        alert_id("A", TACHYCARDIA, at(0)),
    )


def test_a_muted_episode_reopened_after_the_mute_ran_out_publishes_open():
    """Muted while it first ran, its condition back within the cooldown once the mute is over:
    the reopen is judged at its own moment, or a customer reopening every few minutes would
    stay muted for good."""
    last = Episode(TACHYCARDIA, at(0), at(69), 150, 70, ended_at=at(70), muted=True)
    expired = Lifecycle(cooldown=timedelta(seconds=600), muted_until=NOW - timedelta(seconds=1))
    reopened = evolve_rows(series("A", 300, [170] * 61), last={TACHYCARDIA: last},
                           lifecycle=expired)  # fmt: skip
    (event,) = reopened.events
    assert (event["status"], event["revision"]) == (OPEN, 1)
    assert not reopened.episodes[0].muted
    still = Lifecycle(cooldown=timedelta(seconds=600), muted_until=NOW + timedelta(hours=1))
    quiet = evolve_rows(series("A", 300, [170] * 61), last={TACHYCARDIA: last}, lifecycle=still)
    assert quiet.events == [] and quiet.episodes[0].muted


def test_after_the_cooldown_a_new_episode_opens():
    last = Episode(TACHYCARDIA, at(0), at(69), 150, 70, ended_at=at(70))
    later = evolve_rows(series("A", 671, [150] * 61), last={TACHYCARDIA: last})
    (event,) = later.events
    assert event["status"] == OPEN and event["alert_id"] == alert_id("A", TACHYCARDIA, at(671))
    assert later.episodes[0].revision == 0


def test_reopens_only_an_ended_episode_of_the_past():
    ended = Episode(TACHYCARDIA, at(0), at(69), 150, 70, ended_at=at(70))
    assert reopens(ended, at(670), timedelta(seconds=600))
    assert not reopens(ended, at(671), timedelta(seconds=600))
    assert not reopens(replace_open(ended), at(100), timedelta(seconds=600))
    assert not reopens(None, at(100), timedelta(seconds=600))
    assert not reopens(ended, at(100), timedelta(0))


def replace_open(episode: Episode) -> Episode:
    return Episode(episode.kind, episode.started_at, episode.last_reading_at, 150, 1)


def test_a_muted_customer_records_and_publishes_nothing_for_the_episode_life():
    muted = Lifecycle(cooldown=timedelta(seconds=600), muted_until=NOW + timedelta(hours=1))
    opened = evolve_rows(series("A", 0, [150] * 70), lifecycle=muted)
    assert opened.events == [] and opened.episodes[0].muted
    ended = evolve_rows(series("A", 70, [80]), opened.tracker, {TACHYCARDIA: opened.episodes[0]})
    assert ended.events == [] and ended.episodes[0].muted


def test_an_episode_opened_unmuted_keeps_publishing():
    opened = evolve_rows(series("A", 0, [150] * 70))
    muted = Lifecycle(muted_until=NOW + timedelta(hours=1))
    ended = evolve_rows(
        series("A", 70, [80]), opened.tracker, {TACHYCARDIA: opened.episodes[0]}, lifecycle=muted
    )
    assert [e["status"] for e in ended.events] == [RESOLVED]


def test_a_mute_in_the_past_is_no_mute():
    expired = Lifecycle(muted_until=NOW - timedelta(seconds=1))
    assert len(evolve_rows(series("A", 0, [150] * 70), lifecycle=expired).events) == 1


def test_per_customer_bounds():
    rows = series("A", 0, [110] * 70) + series("B", 0, [110] * 70)
    rules = {"A": Thresholds(high_bpm=100), "B": Thresholds()}
    runs = runs_by_customer(rows, rules)
    assert [r.kind for r in runs["A"]] == [TACHYCARDIA]
    assert [r.kind for r in runs["B"]] == [None]
