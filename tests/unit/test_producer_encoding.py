"""The fast encoder's bytes are exactly the contract's encode_reading bytes, and the legacy
encoder's exactly the original system's generator's."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from random import Random
from zoneinfo import ZoneInfo

import pytest

from heartbeat_contract import encode_reading
from heartbeat_producer.config import SimulationConfig
from heartbeat_producer.encoding import LegacyEncoder, ReadingEncoder
from heartbeat_producer.simulator import Simulator

pytestmark = pytest.mark.unit

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "customer_id", ["C0001", "C" * 64, "Zoë-Ørsted", 'say "hi"', "back\\slash", "客户-42"]
)
def test_bytes_equal_the_contract_encoding(customer_id):
    encoder = ReadingEncoder()
    rng = Random(1)
    base = 1_795_000_000_000
    for _ in range(2000):
        epoch_ms = base + rng.randrange(0, 10_000_000)
        heart_rate = rng.randint(-5, 300)
        moment = EPOCH + timedelta(milliseconds=epoch_ms)
        assert encoder.encode(customer_id, epoch_ms, heart_rate) == encode_reading(
            customer_id, moment, heart_rate
        )


def test_second_and_day_boundaries():
    encoder = ReadingEncoder()
    midnight = int((datetime(2027, 1, 1, tzinfo=UTC) - EPOCH).total_seconds() * 1000)
    assert encoder.timestamp(midnight - 1) == "2026-12-31T23:59:59.999Z"
    assert encoder.timestamp(midnight) == "2027-01-01T00:00:00.000Z"
    assert encoder.timestamp(midnight + 7) == "2027-01-01T00:00:00.007Z"


def test_cache_stays_bounded():
    encoder = ReadingEncoder()
    for second in range(10_000):
        encoder.timestamp(second * 1000)
    assert len(encoder._seconds) <= 4096
    assert encoder.timestamp(5_000) == "1970-01-01T00:00:05.000Z"


def original_generator_message(customer_id: int, local_now: datetime, heart_rate: int) -> bytes:
    """What the replaced system's generator sends for one reading."""
    body = {
        "customer_id": customer_id,
        "timestamp": local_now.isoformat(),
        "heart_rate": heart_rate,
    }
    return json.dumps(body).encode()


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York"])
def test_legacy_bytes_equal_the_original_generators(zone):
    encoder = LegacyEncoder(zone)
    for epoch_ms in (1_795_000_000_000, 1_795_000_000_123, 1_774_746_000_000):  # .000 too
        local_now = (EPOCH + timedelta(milliseconds=epoch_ms)).astimezone(ZoneInfo(zone))
        key, value = encoder.encode("17", epoch_ms, 75)
        assert key == b"17"
        assert value == original_generator_message(17, local_now.replace(tzinfo=None), 75)


def test_legacy_simulation_sends_integer_ids_and_naive_times_with_its_outliers():
    config = SimulationConfig(customers=100, seed=3, invalid_rate=0.1, message_format="legacy")
    messages = Simulator(config, start=EPOCH + timedelta(days=20_000)).take(1000)
    bodies = [json.loads(m.value) for m in messages]
    assert {b["customer_id"] for b in bodies} == set(range(1, 101))
    assert [m.key for m in messages] == [str(b["customer_id"]).encode() for b in bodies]
    assert all("+" not in b["timestamp"] and "Z" not in b["timestamp"] for b in bodies)
    assert Counter(m.outcome for m in messages) == {"valid": 900, "out_of_range": 100}


def test_legacy_format_has_no_malformed_messages():
    with pytest.raises(ValueError, match="legacy format has no malformed"):
        SimulationConfig(malformed_rate=0.1, message_format="legacy")
