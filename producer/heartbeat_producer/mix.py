"""A known mix of messages for end-to-end tests: every outcome, each message's expected result.

    messages = known_mix(seed=7, n=1000)
    send_all(messages, bootstrap_servers=..., topic=...)   # heartbeat_producer.publisher
    expected = Counter(m.outcome for m in messages)       # "valid" + the quarantine reasons

Event times end a few seconds before `now` (default: the wall clock) and span `span_seconds`, so
valid readings are never "in the future" when processed, while the far-future variants of
invalid_timestamp are days ahead of any timely processing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .config import SimulationConfig
from .simulator import Message, Simulator


def known_mix(
    seed: int,
    n: int,
    *,
    customers: int = 10,
    malformed_rate: float = 0.2,
    invalid_rate: float = 0.1,
    abnormal_rate: float = 0.1,
    span_seconds: float = 60.0,
    now: datetime | None = None,
    customer_prefix: str = "C",
) -> list[Message]:
    """n messages with exactly round(n * rate) malformed and out-of-range ones.

    `customer_prefix` names the customers (C0001... by default, as the live producer does); the
    tests pass their own so their readings can never be taken for the live stack's.

    Malformed reasons are dealt in shuffled rounds of four, so with n * malformed_rate >= 4
    (n >= 20 at the defaults) every quarantine reason is present; their counts differ by at
    most one. Deterministic for a given seed, n and now.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    config = SimulationConfig(
        customers=customers,
        seed=seed,
        invalid_rate=invalid_rate,
        abnormal_rate=abnormal_rate,
        malformed_rate=malformed_rate,
        customer_prefix=customer_prefix,
    )
    end = (now or datetime.now(UTC)) - timedelta(seconds=5)
    start = end - timedelta(seconds=span_seconds)
    simulator = Simulator(config, start=start, rate=n / span_seconds, block=n)
    return simulator.take(n)
