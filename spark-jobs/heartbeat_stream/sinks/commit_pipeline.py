"""At most one batch transaction in flight, on a thread of its own, so that Spark stages the
next batch while PostgreSQL commits this one.

Why: staging (Spark: read, classify, JDBC append) and committing (PostgreSQL: move, rollups,
alert rules) each kept the two cores busy while the other waited. Overlapped, `foreachBatch`
returns once its batch is staged and its commit handed over, so Spark records the batch before
PostgreSQL commits it, but never more than one batch ahead: the next batch waits for this
commit before it hands over its own, and fails the query if this commit failed. A job that dies
with a commit in flight is caught up at its next start (runtime/replay_ahead.py); a stage that a
crash emptied meanwhile is caught by the commit itself (stage_sentinel).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class CommitPipeline:
    """Runs commits one at a time; `overlap=False` waits for each before `submit` returns."""

    def __init__(self, overlap: bool) -> None:
        self.overlap = overlap
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-commit")
        self._pending: Future[None] | None = None

    def submit(self, commit: Callable[[], None]) -> None:
        """Wait for the commit in flight (raising its error), then start `commit`."""
        self.settle()
        self._pending = self._executor.submit(commit)
        if not self.overlap:
            self.settle()

    def settle(self) -> None:
        """Wait for the commit in flight, if any; raise what it raised."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def failure(self) -> BaseException | None:
        """The error of a commit that has finished by failing, else None. The job's main loop
        asks, so a commit that fails while no next batch comes still ends the job."""
        pending = self._pending
        if pending is not None and pending.done():
            return pending.exception()
        return None

    def close(self) -> None:
        """Wait for the commit in flight and stop the thread."""
        try:
            self.settle()
        finally:
            self._executor.shutdown(wait=True)
