"""The simulator's critical readings through the job's own critical rule (pure Python): its
sensor glitches (0, 2, 184, 228 among normal readings) never open a critical episode, and every
critical episode that opens is one of the persistent episodes it scripted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from heartbeat_contract import MAX_VALID_BPM, MIN_VALID_BPM, OUT_OF_RANGE
from heartbeat_contract.alerts import CRITICAL_HIGH, CRITICAL_LOW
from heartbeat_producer.config import DEFAULT_CRITICAL_RATE, SimulationConfig
from heartbeat_producer.physiology import CRITICAL_HIGH_BPM, CRITICAL_LOW_BPM, CriticalEpisodes
from heartbeat_producer.simulator import VALID, Simulator
from heartbeat_stream.transforms.episodes import CriticalRule, EpisodeChange, advance, runs_of

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CUSTOMERS = 1000
MINUTES = 10


def _critical_episodes(simulator: Simulator) -> dict[str, list[EpisodeChange]]:
    """Ten minutes of the population, grouped per customer and folded by the critical rule as
    the job would (valid and out-of-range readings; malformed ones carry no reading)."""
    series: dict[str, list[tuple[datetime, int]]] = {}
    for message in simulator.take(CUSTOMERS * 60 * MINUTES):
        if message.outcome in (VALID, OUT_OF_RANGE):
            at = EPOCH + timedelta(milliseconds=message.timestamp_ms)
            series.setdefault(message.customer_id, []).append((at, message.heart_rate))
    rule = CriticalRule()
    opened = {}
    for customer, readings in series.items():
        # Cheap pre-check: a customer without a plausible out-of-range reading has no run.
        if all(MIN_VALID_BPM <= bpm <= MAX_VALID_BPM or rule.ignores(bpm) for _, bpm in readings):
            continue
        _, changes = advance(None, runs_of(readings, rule), rule.sustain, rule.min_readings)
        if changes:
            opened[customer] = changes
    return opened


def test_glitches_alone_open_no_critical_episode():
    simulator = Simulator(
        SimulationConfig(customers=CUSTOMERS, seed=3, critical_rate=0.0), start=START
    )
    assert _critical_episodes(simulator) == {}
    assert simulator.critical_episodes() == []


@pytest.mark.parametrize(
    ("rate", "seed", "at_least"),
    [
        (DEFAULT_CRITICAL_RATE, 7, 3),  # the default mix: ~0.5 expected in ten minutes (seed 7: 3)
        (0.2, 3, 20),  # many more, so that ten minutes hold plenty
    ],
)
def test_every_critical_episode_opened_is_a_scripted_one(rate, seed, at_least):
    config = SimulationConfig(customers=CUSTOMERS, seed=seed, critical_rate=rate)
    simulator = Simulator(config, start=START)
    opened = _critical_episodes(simulator)
    scripted = simulator.critical_episodes()
    end_ms = (START - EPOCH) // timedelta(milliseconds=1) + MINUTES * 60_000
    complete = [(c, e) for c, e in scripted if e.end_ms <= end_ms]
    assert len(complete) >= at_least
    for customer, changes in opened.items():
        for change in changes:
            start_ms = (change.started_at - EPOCH) // timedelta(milliseconds=1)
            last_ms = (change.last_reading_at - EPOCH) // timedelta(milliseconds=1)
            matches = [
                e for c, e in scripted
                if c == customer and e.start_ms <= start_ms and last_ms < e.end_ms
                and change.kind == (CRITICAL_HIGH if e.high else CRITICAL_LOW)
            ]  # fmt: skip
            assert matches, (customer, change)
    # And each complete scripted episode (20-60 s of readings every second) opened.
    opened_customers = {(c, e.start_ms) for c, e in complete if c in opened}
    assert opened_customers == {(c, e.start_ms) for c, e in complete}


def test_default_rate_is_a_few_an_hour_over_a_thousand_customers():
    assert SimulationConfig().critical_rate == DEFAULT_CRITICAL_RATE
    assert 1 <= DEFAULT_CRITICAL_RATE * 1000 <= 10


@pytest.mark.parametrize("seed", [1, 2])
def test_critical_readings_stay_in_their_band_for_the_episode(seed):
    schedule = CriticalEpisodes(Random(seed), rate_per_hour=60.0, start_ms=0)
    readings = [(t, schedule.bpm(t)) for t in range(0, 4 * 3_600_000, 1000)]
    assert schedule.episodes
    for episode in schedule.episodes:
        low, high = CRITICAL_HIGH_BPM if episode.high else CRITICAL_LOW_BPM
        inside = [bpm for t, bpm in readings if episode.start_ms <= t < episode.end_ms]
        assert inside and all(low <= bpm <= high for bpm in inside)
        assert 20_000 <= episode.end_ms - episode.start_ms <= 60_000
    covered = {t for e in schedule.episodes for t, _ in readings if e.start_ms <= t < e.end_ms}
    assert all((bpm is None) == (t not in covered) for t, bpm in readings)
