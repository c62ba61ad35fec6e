"""Rate pacing against a monotonic clock, in small batches.

Sleeping once per message caps a Python loop far below the rates we need (a sleep overshoots by
~50-100 us). Instead the pacer tells the caller how many messages are due right now: message i
is due at start + i/rate, so short stalls are caught up and the long-run rate is exact.

Once nothing is due it waits at least `tick` (the producer's linger): the Kafka client holds a
message that long anyway to batch it, so readings handed over in one go leave in one request
instead of one wake-up, send and request each.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

MAX_SLEEP_SECONDS = 0.05  # wake at least this often, so a stop request is seen promptly


class Pacer:
    """Releases readings so that on average `rate` leave per second, counted from the start."""

    def __init__(
        self,
        rate: float,
        *,
        max_batch: int = 2000,
        tick: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"rate must be a positive finite number, got {rate}")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if not 0.0 <= tick <= MAX_SLEEP_SECONDS:
            raise ValueError(f"tick must be in [0, {MAX_SLEEP_SECONDS}] seconds, got {tick}")
        self.rate = rate
        self.max_batch = max_batch
        self.tick = tick
        self._clock = clock
        self._sleep = sleep
        self._start = clock()
        self.released = 0

    def due(self) -> int:
        """How many messages should have left by now but have not been released yet."""
        elapsed = self._clock() - self._start
        # The epsilon absorbs float error, so waking exactly on time finds the message due.
        return math.floor(elapsed * self.rate + 1e-6) + 1 - self.released

    def next_batch(self) -> int:
        """Wait until at least one message is due, and at least `tick` (up to MAX_SLEEP_SECONDS
        in all), then release them.

        Returns the number released (at most max_batch), or 0 if the wait timed out first, so
        a caller's loop checks its stop conditions at least every MAX_SLEEP_SECONDS.
        """
        due = self.due()
        if due <= 0:
            wait = (self.released / self.rate) - (self._clock() - self._start)
            self._sleep(min(max(wait, self.tick), MAX_SLEEP_SECONDS))
            due = self.due()
            if due <= 0:
                return 0
        batch = min(due, self.max_batch)
        self.released += batch
        return batch
