"""The producer's known mix plus the cases it lacks, with each message's expected outcome:
written once for the job tests that publish it (test_stream_job, test_hostile_input)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from heartbeat_contract import encode_reading
from heartbeat_producer.mix import known_mix
from tests.support.world import CUSTOMER_PREFIX

# A customer id with unicode and both quotes: stored as it is.
AWKWARD_CUSTOMER = 'Zoë "O\'Brien" 客户'


def special_messages(start: datetime) -> list[tuple[bytes | None, str]]:
    """Cases the simulator's mix lacks: a Kafka null value, unicode and quotes in ids."""
    _, unicode_value = encode_reading(AWKWARD_CUSTOMER, start, 72)
    return [(None, "malformed_json"), (unicode_value, "valid"), (b"\xff\xfe", "malformed_json")]


def mixed_messages(count: int, seed: int) -> list[tuple[bytes | None, str]]:
    """The producer's known mix plus the special cases: (value, expected outcome) pairs."""
    now = datetime.now(UTC)
    messages = known_mix(seed, count, now=now, span_seconds=120, customer_prefix=CUSTOMER_PREFIX)
    mix = [(m.value, m.outcome) for m in messages]
    return mix + special_messages(now - timedelta(minutes=1))
