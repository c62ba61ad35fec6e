"""What the history loader can script on a customer (pure parts): a heart's level offset and a
forced workout, level shifts by time, and the personal-baseline scenario's three customers."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from heartbeat_ops import history
from heartbeat_producer.physiology import EXERCISE, Heart

pytestmark = pytest.mark.unit

END = datetime(2026, 9, 1, 7, 30, tzinfo=UTC)  # mid-morning: today is partial


def _levels(heart: Heart, seconds: int) -> list[int]:
    return [heart.beat(5.0) for _ in range(seconds // 5)]


def test_offset_moves_every_reading_by_that_much():
    profile = history.SCENARIO_PROFILE
    plain, shifted = (Heart(profile, Random(4), 0.0) for _ in range(2))
    shifted.offset = 8.0
    difference = statistics.mean(_levels(shifted, 86_400)) - statistics.mean(_levels(plain, 86_400))
    assert difference == pytest.approx(8.0, abs=0.3)  # same random draws, 8 bpm up


def test_workout_exercises_for_its_time_then_the_activities_resume():
    heart = Heart(history.SCENARIO_PROFILE, Random(5), 0.0)
    heart.exercise(3600.0)
    assert heart.activity == EXERCISE
    readings = _levels(heart, 3600)
    assert statistics.mean(readings[len(readings) // 2 :]) > history.SCENARIO_PROFILE.baseline + 30
    _levels(heart, 60)
    assert heart.activity != EXERCISE


def test_shifts_add_up_where_they_overlap_and_end_exclusively():
    t = END
    script = history.CustomerScript(
        shifts=(history.Shift(t, t + timedelta(hours=2), 3.0),
                history.Shift(t + timedelta(hours=1), t + timedelta(hours=3), 5.0))
    )  # fmt: skip
    assert [script.offset_at(t + timedelta(hours=h)) for h in (-1, 0, 1, 2, 3)] == [0, 3, 8, 5, 0]


def test_baseline_scenario_scripts_the_last_two_whole_days():
    scripts = history.baseline_scenario(END, days=30, seed=1)
    midnight = datetime(2026, 9, 1, tzinfo=UTC)
    judged = [midnight - timedelta(days=2), midnight - timedelta(days=1)]
    shifted, varying, workout = (scripts[s] for s in (history.SHIFTED, history.VARYING,
                                                       history.WORKOUT))  # fmt: skip
    # +8 bpm from the first judged day's start on; nothing before.
    assert shifted.offset_at(judged[0] - timedelta(seconds=1)) == 0
    assert shifted.offset_at(judged[0]) == shifted.offset_at(END - timedelta(seconds=1)) == 8.0
    # +-3 bpm day to day, balanced (every 7 days running: median 0), +3 on both judged days.
    noon = [midnight - timedelta(days=n, hours=12) for n in range(29, 2, -1)]
    offsets = [varying.offset_at(moment) for moment in noon]
    assert max(map(abs, offsets)) == 3.0
    assert all(statistics.median(offsets[i : i + 7]) == 0 for i in range(len(offsets) - 6))
    assert [varying.offset_at(day + timedelta(hours=12)) for day in judged] == [3.0, 3.0]
    # One workout, centred on the midnight between the judged days.
    (session,) = workout.workouts
    assert session.start + timedelta(seconds=session.seconds / 2) == judged[1]
    assert all(s.profile == history.SCENARIO_PROFILE for s in scripts.values())


def test_a_script_changes_only_its_own_customer():
    plan = history.HistoryPlan(customers=5, days=0.5, interval_seconds=600, end=END, seed=2,
                               invalid_rate=0.0)  # fmt: skip
    scripted = history.HistoryPlan(
        customers=5, days=0.5, interval_seconds=600, end=END, seed=2, invalid_rate=0.0,
        scripts={1: history.CustomerScript(shifts=(history.Shift(END - timedelta(days=1), END,
                                                                 10.0),))},
    )  # fmt: skip
    rows = [r for chunk in history._chunks(plan) for r in chunk.rows]
    changed = [r for chunk in history._chunks(scripted) for r in chunk.rows]
    assert [r for r in rows if not r[0].endswith("2")] == [
        r for r in changed if not r[0].endswith("2")
    ]
    own = [(a[2], b[2]) for a, b in zip(rows, changed, strict=True) if a[0].endswith("2")]
    assert statistics.mean(b - a for a, b in own) == pytest.approx(10.0, abs=1.0)
