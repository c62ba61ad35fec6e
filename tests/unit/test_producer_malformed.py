"""Broken messages get exactly the quarantine reason recorded for them, and the asked share.

`expected_outcome` is an independent reading of the validation rules (in their order), used as
the oracle: every message the producer makes must be classified as the producer says.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from heartbeat_contract import (
    CUSTOMER_ID,
    HEART_RATE,
    INVALID_TIMESTAMP,
    INVALID_TYPE,
    MALFORMED_JSON,
    MAX_CLOCK_SKEW_SECONDS,
    MAX_CUSTOMER_ID_LENGTH,
    MAX_VALID_BPM,
    MIN_VALID_BPM,
    MISSING_FIELD,
    OUT_OF_RANGE,
    QUARANTINE_REASONS,
    REQUIRED_FIELDS,
    TIMESTAMP,
)
from heartbeat_producer.config import SimulationConfig
from heartbeat_producer.malformed import MALFORMED_REASONS, VARIANTS, Malformer, Reading
from heartbeat_producer.mix import known_mix
from heartbeat_producer.simulator import VALID, Simulator

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 20, 0, 0, tzinfo=UTC)
ISO_8601_WITH_OFFSET = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$"
)


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def expected_outcome(value: bytes, now: datetime) -> str:
    """The validation rules of the streaming job, applied in order; the first failure wins."""
    try:
        body = json.loads(value.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError):
        return MALFORMED_JSON
    if not isinstance(body, dict):
        return MALFORMED_JSON
    if any(body.get(field) is None for field in REQUIRED_FIELDS):
        return MISSING_FIELD
    customer_id, heart_rate, timestamp = body[CUSTOMER_ID], body[HEART_RATE], body[TIMESTAMP]
    if type(heart_rate) is not int:  # bool is not int here, 72.0 is a float
        return INVALID_TYPE
    if not isinstance(customer_id, str) or not 1 <= len(customer_id) <= MAX_CUSTOMER_ID_LENGTH:
        return INVALID_TYPE
    if not isinstance(timestamp, str) or not ISO_8601_WITH_OFFSET.match(timestamp):
        return INVALID_TIMESTAMP
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return INVALID_TIMESTAMP
    if moment > now + timedelta(seconds=MAX_CLOCK_SKEW_SECONDS):
        return INVALID_TIMESTAMP
    if not MIN_VALID_BPM <= heart_rate <= MAX_VALID_BPM:
        return OUT_OF_RANGE
    return VALID


def reading(customer_id: str = "C0042", heart_rate: int = 72) -> Reading:
    epoch_ms = int(NOW.timestamp() * 1000) - 60_000 + 123
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return Reading(customer_id, moment.strftime("%Y-%m-%dT%H:%M:%S.123Z"), heart_rate, epoch_ms)


def test_the_oracle_accepts_the_underlying_reading():
    r = reading()
    value = json.dumps(r.body()).encode()
    assert expected_outcome(value, NOW) == VALID


@pytest.mark.parametrize(
    ("reason", "variant"),
    [(reason, variant) for reason, variants in VARIANTS.items() for variant in variants],
    ids=lambda item: getattr(item, "__name__", item),
)
@pytest.mark.parametrize("seed", range(25))
def test_every_variant_has_the_reason_it_is_filed_under(reason, variant, seed):
    rng = Random(seed)
    r = reading(heart_rate=rng.randint(40, 180))
    produced = variant(rng, r)
    value = produced if isinstance(produced, bytes) else json.dumps(produced).encode()
    assert expected_outcome(value, NOW) == reason, value


def test_reasons_cover_all_but_out_of_range():
    assert set(MALFORMED_REASONS) == set(QUARANTINE_REASONS) - {OUT_OF_RANGE}
    assert set(VARIANTS) == set(MALFORMED_REASONS)


def test_reasons_are_dealt_in_equal_shares():
    malformer = Malformer(Random(1))
    reasons = [malformer.make(reading())[1] for _ in range(4 * 250)]
    assert Counter(reasons) == dict.fromkeys(MALFORMED_REASONS, 250)


@pytest.mark.parametrize("rate", [0.001, 0.01, 0.0333, 0.25, 0.5])
def test_simulated_malformed_share_is_exact_and_each_outcome_is_right(rate):
    n = 20_000  # a whole number of 1000-message blocks
    start = NOW - timedelta(seconds=n / 100)
    messages = Simulator(SimulationConfig(seed=7, malformed_rate=rate), start=start).take(n)
    broken = [m for m in messages if m.outcome in MALFORMED_REASONS]
    assert len(broken) == int(n * rate + 0.5)
    for message in messages:
        assert expected_outcome(message.value, NOW) == message.outcome, message


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


def test_known_mix_has_every_outcome_with_exact_counts():
    messages = known_mix(seed=11, n=1000, now=NOW)
    counts = Counter(m.outcome for m in messages)
    assert counts[OUT_OF_RANGE] == 100
    assert {counts[reason] for reason in MALFORMED_REASONS} == {50}
    assert counts[VALID] == 700
    assert any(m.abnormal for m in messages)
    for message in messages:
        assert expected_outcome(message.value, NOW) == message.outcome
        assert message.timestamp_ms <= NOW.timestamp() * 1000


def test_known_mix_is_deterministic_and_small_mixes_still_have_every_reason():
    assert known_mix(seed=2, n=500, now=NOW) == known_mix(seed=2, n=500, now=NOW)
    small = known_mix(seed=2, n=20, now=NOW)
    assert {m.outcome for m in small} == {VALID, *QUARANTINE_REASONS}
