"""The fast encoder's bytes are exactly the contract's encode_reading bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from heartbeat_contract import encode_reading
from heartbeat_producer.encoding import ReadingEncoder

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
