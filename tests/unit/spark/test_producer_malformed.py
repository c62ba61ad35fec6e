"""Broken messages get exactly the quarantine reason recorded for them, and the asked share.

The oracle is the streaming job's own classifier
(heartbeat_stream.transforms.validation.parse_messages) on a real Spark session: every message
the producer makes must be classified as the producer says.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from heartbeat_contract import OUT_OF_RANGE, QUARANTINE_REASONS
from heartbeat_producer.config import SimulationConfig
from heartbeat_producer.malformed import MALFORMED_REASONS, VARIANTS, Malformer, Reading
from heartbeat_producer.mix import known_mix
from heartbeat_producer.simulator import VALID, Simulator
from tests.support.classify import NOW, outcomes

pytestmark = pytest.mark.unit

SEEDS = 25  # a variant that draws from its rng gets this many different messages


def classify(spark, values: list[bytes]) -> list[str]:
    """The job's outcome of each value, in order ("valid" for an accepted reading)."""
    return [reason or VALID for reason in outcomes(spark, values)]


def reading(customer_id: str = "C0042", heart_rate: int = 72) -> Reading:
    epoch_ms = int(NOW.timestamp() * 1000) - 60_000 + 123
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return Reading(customer_id, moment.strftime("%Y-%m-%dT%H:%M:%S.123Z"), heart_rate, epoch_ms)


def test_the_underlying_reading_is_valid(spark):
    assert classify(spark, [json.dumps(reading().body()).encode()]) == [VALID]


def test_every_variant_has_the_reason_it_is_filed_under(spark):
    """Each variant with SEEDS rngs; variants that ignore their rng give one distinct case."""
    cases: dict[bytes, tuple[str, str]] = {}
    for reason, variants in VARIANTS.items():
        for variant in variants:
            for seed in range(SEEDS):
                rng = Random(seed)
                produced = variant(rng, reading(heart_rate=rng.randint(40, 180)))
                value = produced if isinstance(produced, bytes) else json.dumps(produced).encode()
                cases[value] = (reason, variant.__name__)
    assert {name for _, name in cases.values()} == {
        variant.__name__ for variants in VARIANTS.values() for variant in variants
    }
    values = list(cases)
    wrong = [
        (cases[value][1], value, outcome)
        for value, outcome in zip(values, classify(spark, values), strict=True)
        if outcome != cases[value][0]
    ]
    assert not wrong


def test_reasons_cover_all_but_out_of_range():
    assert set(MALFORMED_REASONS) == set(QUARANTINE_REASONS) - {OUT_OF_RANGE}
    assert set(VARIANTS) == set(MALFORMED_REASONS)


def test_reasons_are_dealt_in_equal_shares():
    malformer = Malformer(Random(1))
    reasons = [malformer.make(reading())[1] for _ in range(4 * 250)]
    assert Counter(reasons) == dict.fromkeys(MALFORMED_REASONS, 250)


@pytest.mark.parametrize("rate", [0.001, 0.01, 0.0333, 0.25, 0.5])
def test_simulated_malformed_share_is_exact(rate):
    n = 20_000  # a whole number of 1000-message blocks
    start = NOW - timedelta(seconds=n / 100)
    messages = Simulator(SimulationConfig(seed=7, malformed_rate=rate), start=start).take(n)
    broken = [m for m in messages if m.outcome in MALFORMED_REASONS]
    assert len(broken) == int(n * rate + 0.5)


def test_simulated_messages_are_classified_as_the_producer_says(spark):
    start = NOW - timedelta(seconds=100)
    messages = Simulator(SimulationConfig(seed=7, malformed_rate=0.25), start=start).take(10_000)
    outcomes = classify(spark, [m.value for m in messages])
    assert Counter(outcomes) == Counter(m.outcome for m in messages)
    assert outcomes == [m.outcome for m in messages]


def test_within_a_block_the_count_is_off_by_less_than_one_block_quota():
    rate = 0.01
    messages = Simulator(SimulationConfig(seed=3, malformed_rate=rate), start=NOW).take(50_000)
    running = 0
    for index, message in enumerate(messages, start=1):
        running += message.outcome in MALFORMED_REASONS
        assert abs(running - index * rate) <= 1000 * rate + 1


def test_malformed_messages_spread_over_customers():
    messages = Simulator(SimulationConfig(seed=5, malformed_rate=0.01), start=NOW).take(100_000)
    hit = {m.customer_id for m in messages if m.outcome in MALFORMED_REASONS}
    assert len(hit) >= 90  # 1000 of them over 100 customers, not one unlucky customer


def test_known_mix_has_every_outcome_with_exact_counts(spark):
    messages = known_mix(seed=11, n=1000, now=NOW)
    counts = Counter(m.outcome for m in messages)
    assert counts[OUT_OF_RANGE] == 100
    assert {counts[reason] for reason in MALFORMED_REASONS} == {50}
    assert counts[VALID] == 700
    assert any(m.abnormal for m in messages)
    assert classify(spark, [m.value for m in messages]) == [m.outcome for m in messages]
    assert all(m.timestamp_ms <= NOW.timestamp() * 1000 for m in messages)


def test_known_mix_is_deterministic_and_small_mixes_still_have_every_reason():
    assert known_mix(seed=2, n=500, now=NOW) == known_mix(seed=2, n=500, now=NOW)
    small = known_mix(seed=2, n=20, now=NOW)
    assert {m.outcome for m in small} == {VALID, *QUARANTINE_REASONS}
