"""The simulated population: believable curves, exact outlier shares, contract-valid messages,
strictly increasing event times per customer, and reproducibility from the seed."""

from __future__ import annotations

import itertools
import json
import re
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from heartbeat_contract import (
    BRADYCARDIA_BELOW_BPM,
    CUSTOMER_ID,
    HEART_RATE,
    MAX_CUSTOMER_ID_LENGTH,
    MAX_VALID_BPM,
    MIN_VALID_BPM,
    OUT_OF_RANGE,
    QUARANTINE_REASONS,
    TACHYCARDIA_ABOVE_BPM,
    TIMESTAMP,
)
from heartbeat_producer.config import SimulationConfig
from heartbeat_producer.simulator import VALID, Message, Simulator, customer_ids

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 29, 20, 0, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def simulate(n: int, rate: float | None = None, **config: object) -> list[Message]:
    settings = SimulationConfig(**{"seed": 42, **config})  # type: ignore[arg-type]
    return Simulator(settings, start=START, rate=rate).take(n)


@pytest.fixture(scope="module")
def hour() -> list[Message]:
    """20 customers for an hour of simulated time at one reading each per second."""
    return simulate(72_000, customers=20, invalid_rate=0.01, abnormal_rate=0.05)


def by_customer(messages: list[Message]) -> dict[str, list[Message]]:
    series: dict[str, list[Message]] = defaultdict(list)
    for message in messages:
        series[message.customer_id].append(message)
    return series


def assert_matches_contract(message: Message) -> None:
    body = json.loads(message.value.decode("utf-8"))
    assert set(body) == {CUSTOMER_ID, TIMESTAMP, HEART_RATE}
    assert isinstance(body[CUSTOMER_ID], str)
    assert 1 <= len(body[CUSTOMER_ID]) <= MAX_CUSTOMER_ID_LENGTH
    assert type(body[HEART_RATE]) is int
    assert ISO_Z.match(body[TIMESTAMP]), body[TIMESTAMP]
    moment = datetime.fromisoformat(body[TIMESTAMP].replace("Z", "+00:00"))
    assert moment == EPOCH + timedelta(milliseconds=message.timestamp_ms)
    assert message.key == body[CUSTOMER_ID].encode() == message.customer_id.encode()
    assert body[HEART_RATE] == message.heart_rate


def test_customer_ids_are_zero_padded_and_unique():
    assert customer_ids(3) == ["C0001", "C0002", "C0003"]
    assert customer_ids(100)[-1] == "C0100"
    assert customer_ids(12_345)[0] == "C00001"
    assert len(set(customer_ids(12_345))) == 12_345


def test_every_customer_reads_once_per_second_at_the_default_rate(hour):
    for series in by_customer(hour).values():
        assert len(series) == 3600
        steps = {b.timestamp_ms - a.timestamp_ms for a, b in itertools.pairwise(series)}
        assert steps == {1000}


@pytest.mark.parametrize("rate", [20.0, 1_000.0, 50_000.0, 1e9])
def test_each_customers_timestamps_strictly_increase_at_any_rate(rate):
    messages = simulate(20_000, rate=rate, customers=10, malformed_rate=0.01)
    for series in by_customer(messages).values():
        stamps = [m.timestamp_ms for m in series]
        assert all(a < b for a, b in itertools.pairwise(stamps))


def test_event_times_follow_the_simulated_clock():
    messages = simulate(1000, rate=500.0, customers=5)
    start_ms = int((START - EPOCH).total_seconds() * 1000)
    assert [m.timestamp_ms - start_ms for m in messages[:4]] == [0, 2, 4, 6]
    assert messages[-1].timestamp_ms - start_ms == 1998


def test_non_malformed_messages_match_the_contract(hour):
    assert {m.outcome for m in hour} == {VALID, OUT_OF_RANGE}
    for message in hour:
        assert_matches_contract(message)


def test_valid_readings_are_in_range_and_normal_ones_inside_the_normal_band(hour):
    for message in hour:
        if message.outcome == VALID:
            assert MIN_VALID_BPM <= message.heart_rate <= MAX_VALID_BPM
            normal = BRADYCARDIA_BELOW_BPM <= message.heart_rate <= TACHYCARDIA_ABOVE_BPM
            assert normal != message.abnormal
        else:
            assert not MIN_VALID_BPM <= message.heart_rate <= MAX_VALID_BPM
            assert not message.abnormal


def test_out_of_range_share_is_exact(hour):
    assert Counter(m.outcome for m in hour)[OUT_OF_RANGE] == round(72_000 * 0.01)


def test_abnormal_share_of_time_is_close_to_the_rate(hour):
    share = sum(m.abnormal for m in hour) / len(hour)
    assert 0.03 <= share <= 0.07  # rate 0.05; a few dozen episodes of minutes each


def test_abnormal_readings_come_in_episodes_lasting_minutes(hour):
    runs: list[tuple[int, bool, bool]] = []  # (length in readings, at start, at end)
    for series in by_customer(hour).values():
        flags = [m.abnormal or (m.outcome == OUT_OF_RANGE and i > 0 and series[i - 1].abnormal)
                 for i, m in enumerate(series)]  # fmt: skip
        length = 0
        for i, flag in enumerate(flags):
            if flag:
                length += 1
            elif length:
                runs.append((length, i - length == 0, False))
                length = 0
        if length:
            runs.append((length, len(flags) - length == 0, True))
    complete = [length for length, at_start, at_end in runs if not at_start and not at_end]
    assert complete, "expected at least one complete episode"
    assert min(complete) >= 120  # seconds at one reading per second


def test_curves_are_smooth_and_follow_activity(hour):
    steps, spans = [], []
    for series in by_customer(hour).values():
        rates = [m.heart_rate for m in series if m.outcome == VALID and not m.abnormal]
        steps += [abs(b - a) for a, b in itertools.pairwise(rates)]
        spans.append(max(rates) - min(rates))
    assert statistics.median(steps) <= 1
    assert sorted(steps)[int(len(steps) * 0.99)] <= 4
    assert statistics.median(spans) >= 15  # rest, exercise and sleep differ visibly


def test_customers_have_their_own_baselines(hour):
    medians = [
        statistics.median(m.heart_rate for m in series if m.outcome == VALID)
        for series in by_customer(hour).values()
    ]
    assert max(medians) - min(medians) >= 10


def test_same_seed_same_bytes_and_another_seed_differs():
    first = simulate(5000, malformed_rate=0.05)
    assert first == simulate(5000, malformed_rate=0.05)
    other = simulate(5000, malformed_rate=0.05, seed=43)
    assert [m.value for m in other] != [m.value for m in first]


def test_malformed_injection_does_not_change_the_curves():
    plain = simulate(20_000)
    broken = simulate(20_000, malformed_rate=0.1)
    both = [(a, b) for a, b in zip(plain, broken, strict=True)
            if OUT_OF_RANGE not in (a.outcome, b.outcome)]  # fmt: skip
    assert len(both) > 19_000
    assert all(a.heart_rate == b.heart_rate for a, b in both)


def test_malformed_messages_carry_a_quarantine_reason_and_the_customer_key():
    messages = simulate(10_000, malformed_rate=0.1)
    broken = [m for m in messages if m.outcome not in (VALID, OUT_OF_RANGE)]
    assert len(broken) == 1000
    assert {m.outcome for m in broken} == set(QUARANTINE_REASONS) - {OUT_OF_RANGE}
    assert all(m.key == m.customer_id.encode() and not m.abnormal for m in broken)


def test_start_must_be_timezone_aware():
    with pytest.raises(ValueError, match="timezone"):
        Simulator(SimulationConfig(), start=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "config",
    [
        {"customers": 0},
        {"invalid_rate": -0.1},
        {"abnormal_rate": 1.0},
        {"malformed_rate": 1.5},
        {"invalid_rate": 0.6, "malformed_rate": 0.5},
    ],
)
def test_bad_configuration_is_refused(config):
    with pytest.raises(ValueError):
        SimulationConfig(**config)
