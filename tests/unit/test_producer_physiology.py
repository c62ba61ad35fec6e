"""One heart: activity moves the level, normal readings stay in band, episodes are abnormal."""

from __future__ import annotations

import statistics
from collections import defaultdict
from random import Random

import pytest

from heartbeat_contract import (
    BRADYCARDIA_BELOW_BPM,
    MAX_VALID_BPM,
    MIN_VALID_BPM,
    TACHYCARDIA_ABOVE_BPM,
)
from heartbeat_producer.physiology import (
    EXERCISE,
    REST,
    SLEEP,
    Heart,
    Profile,
    episode_hazard,
    sensor_glitch,
)

pytestmark = pytest.mark.unit


def test_without_episodes_every_reading_is_normal():
    rng = Random(1)
    for _ in range(20):
        heart = Heart(Profile.draw(rng), rng, abnormal_rate=0.0)
        for _ in range(5000):
            bpm = heart.beat(2.0)
            assert BRADYCARDIA_BELOW_BPM <= bpm <= TACHYCARDIA_ABOVE_BPM
            assert not heart.in_episode


def test_activity_sets_the_level_sleep_below_rest_below_exercise():
    rng = Random(2)
    heart = Heart(Profile(baseline=65, variability=1.5, sleep_drop=10, exercise_rise=35), rng, 0.0)
    by_activity: dict[str, list[int]] = defaultdict(list)
    for _ in range(100_000):
        by_activity[heart.activity].append(heart.beat(1.0))
    means = {activity: statistics.mean(values) for activity, values in by_activity.items()}
    assert means[SLEEP] < means[REST] < means[EXERCISE]
    assert means[EXERCISE] - means[SLEEP] > 25


def test_time_spent_in_episodes_matches_the_rate():
    rng = Random(3)
    rate = 0.05
    inside = total = 0
    for _ in range(40):
        heart = Heart(Profile.draw(rng), rng, rate)
        for _ in range(8000):
            bpm = heart.beat(5.0)
            total += 1
            if heart.in_episode:
                inside += 1
                assert MIN_VALID_BPM <= bpm <= MAX_VALID_BPM
                assert not BRADYCARDIA_BELOW_BPM <= bpm <= TACHYCARDIA_ABOVE_BPM
    assert inside / total == pytest.approx(rate, rel=0.25)


def test_hazard_is_zero_without_episodes():
    assert episode_hazard(0.0) == 0.0
    assert episode_hazard(0.5) > episode_hazard(0.1) > 0


def test_sensor_glitches_are_always_out_of_range():
    rng = Random(4)
    values = [sensor_glitch(rng) for _ in range(10_000)]
    assert all(not MIN_VALID_BPM <= v <= MAX_VALID_BPM for v in values)
    assert min(values) == 0 and max(values) > MAX_VALID_BPM
