"""Log quarantined messages as a per-batch summary, with a few samples at a bounded rate."""

from __future__ import annotations

import logging
import time

from .batch_commit import BatchOutcome

log = logging.getLogger("heartbeat.quarantine")


class QuarantineLog:
    """One summary line per batch with rejects; sample lines at most every `sample_every` s."""

    def __init__(self, samples_per_line: int = 3, sample_every: float = 30.0) -> None:
        self.samples_per_line = samples_per_line
        self.sample_every = sample_every
        self._last_sample = float("-inf")

    def wants_samples(self) -> int:
        """How many samples the next batch should fetch (0 while rate-limited)."""
        if time.monotonic() - self._last_sample >= self.sample_every:
            return self.samples_per_line
        return 0

    def record(self, batch_id: int, outcome: BatchOutcome) -> None:
        if not outcome.rejected:
            return
        reasons = ", ".join(f"{r}={n}" for r, n in sorted(outcome.rejected_by_reason.items()))
        log.warning(
            "batch %d quarantined %d of %d messages (%s)",
            batch_id,
            outcome.rejected,
            outcome.rejected + outcome.valid,
            reasons,
        )
        if outcome.samples:
            self._last_sample = time.monotonic()
            for reason, detail, partition, offset in outcome.samples:
                log.warning(
                    "  e.g. partition %d offset %d: %s (%s)", partition, offset, reason, detail
                )
