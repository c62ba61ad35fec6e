"""The pacer releases messages on a schedule against a monotonic clock, in batches."""

from __future__ import annotations

import math
import time

import pytest

from heartbeat_producer.pacing import MAX_SLEEP_SECONDS, Pacer

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def pacer(rate: float, **kwargs: object) -> tuple[Pacer, FakeClock]:
    clock = FakeClock()
    return Pacer(rate, clock=clock, sleep=clock.sleep, **kwargs), clock  # type: ignore[arg-type]


def test_first_message_leaves_at_once_then_on_schedule():
    p, clock = pacer(100.0)
    assert p.next_batch() == 1
    assert p.next_batch() == 1  # slept 10 ms for it
    assert clock.sleeps == [pytest.approx(0.01)]
    clock.now += 0.035  # three more became due meanwhile
    assert p.next_batch() == 3


def test_never_ahead_of_schedule_and_exact_in_the_long_run():
    p, clock = pacer(1234.5)
    while clock.now < 110.0:
        p.next_batch()
        assert p.released <= math.floor((clock.now - 100.0) * 1234.5 + 1e-6) + 1
        clock.now += 0.0007  # the work of sending the batch
    assert p.released == pytest.approx(10 * 1234.5, abs=2)


def test_a_stall_is_caught_up_in_capped_batches():
    p, clock = pacer(10_000.0, max_batch=500)
    p.next_batch()
    clock.now += 1.0  # e.g. the broker was slow
    batches = [p.next_batch() for _ in range(25)]
    assert batches[:20] == [500] * 20
    assert p.released == 1 + 10_000 + batches[20] + sum(batches[21:])


def test_slow_rates_wake_up_regularly_to_let_the_caller_check_for_stop():
    p, clock = pacer(0.1)
    assert p.next_batch() == 1
    assert p.next_batch() == 0
    assert clock.sleeps == [MAX_SLEEP_SECONDS]


def test_a_tick_makes_each_wait_at_least_that_long_and_releases_what_fell_due():
    """At 100/s with a 20 ms tick: two readings per wake-up instead of one, never early."""
    p, clock = pacer(100.0, tick=0.02)
    assert p.next_batch() == 1
    assert p.next_batch() == 2  # slept the tick (20 ms), not until the next one was due (10 ms)
    assert clock.sleeps == [pytest.approx(0.02)]
    while clock.now < 110.0:
        p.next_batch()
        assert p.released <= math.floor((clock.now - 100.0) * 100.0 + 1e-6) + 1
    assert p.released == math.floor((clock.now - 100.0) * 100.0 + 1e-6) + 1  # all that fell due
    assert len(clock.sleeps) == pytest.approx(500, abs=2)  # one wake-up per tick


@pytest.mark.parametrize("tick", [-0.001, MAX_SLEEP_SECONDS + 0.001])
def test_a_tick_must_be_within_a_wait(tick):
    with pytest.raises(ValueError, match="tick"):
        Pacer(100.0, tick=tick)


@pytest.mark.parametrize("rate", [0.0, -1.0, math.inf, math.nan])
def test_rate_must_be_positive_and_finite(rate):
    with pytest.raises(ValueError):
        Pacer(rate)


def test_real_clock_never_runs_ahead_of_schedule():
    """With the real clock too: after t seconds at most rate * t messages (+ the first) left."""
    rate = 20_000.0
    start = time.monotonic()  # before the pacer's own start, so the bound below is never early
    p = Pacer(rate)
    released = 0
    while released < 4_000:
        released += p.next_batch()
        assert released - 1 <= (time.monotonic() - start) * rate + 1e-6
