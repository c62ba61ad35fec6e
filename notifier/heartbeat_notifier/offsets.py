"""Which Kafka offsets may be committed: a partition's offset moves past a message only once every
delivery of it, and of every message before it, is recorded as delivered, dead or suppressed.
Deliveries finish out of order (one slow channel, fast others); the commit waits for the oldest.

Each read of a message is its own entry, finished only by its own deliveries: after a partition
is forgotten (revoked, or the member dropped from its group) and read again, a delivery of the
first read that finishes late must not count for the second read's, or the offset would be
committed past a delivery still retrying, and a restart would lose it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable


class _Read:
    """One read of one message: its deliveries still open."""

    __slots__ = ("open_jobs",)

    def __init__(self, jobs: int) -> None:
        self.open_jobs = jobs


class OffsetTracker:
    """Per partition: messages still being delivered, and the next offset safe to commit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[Hashable, dict[int, _Read]] = {}  # partition -> offset -> its read
        self._next: dict[Hashable, int] = {}  # partition -> one past the highest offset seen
        self._committed: dict[Hashable, int] = {}

    def add(self, partition: Hashable, offset: int, jobs: int) -> Callable[[], None]:
        """A message read, with the number of deliveries it needs (0: nothing to do). Returns
        what each of those deliveries calls once it is recorded as finished."""
        read = _Read(jobs)
        with self._lock:
            if jobs > 0:
                self._pending.setdefault(partition, {})[offset] = read
            self._next[partition] = max(self._next.get(partition, 0), offset + 1)
        return lambda: self._done(partition, offset, read)

    def _done(self, partition: Hashable, offset: int, read: _Read) -> None:
        with self._lock:
            pending = self._pending.get(partition)
            if pending is None or pending.get(offset) is not read:
                return  # forgotten meanwhile (revoked, lost), perhaps read again since
            read.open_jobs -= 1
            if read.open_jobs <= 0:
                del pending[offset]

    def in_flight(self) -> int:
        with self._lock:
            return sum(len(p) for p in self._pending.values())

    def committable(self) -> dict[Hashable, int]:
        """partition -> offset to commit, only where it moved since the last call's result was
        marked committed (`mark_committed`)."""
        with self._lock:
            result = {}
            for partition, next_offset in self._next.items():
                pending = self._pending.get(partition)
                safe = min(pending) if pending else next_offset
                if safe > self._committed.get(partition, -1):
                    result[partition] = safe
            return result

    def mark_committed(self, offsets: dict[Hashable, int]) -> None:
        with self._lock:
            for partition, offset in offsets.items():
                self._committed[partition] = max(self._committed.get(partition, -1), offset)

    def partitions(self) -> set[Hashable]:
        with self._lock:
            return set(self._next) | set(self._pending)

    def forget(self, partitions) -> None:
        """Partitions whose position the consumer dropped (taken away by a rebalance, the
        member lost, the consumer closed): whoever reads them next starts from the commit."""
        with self._lock:
            for partition in partitions:
                self._pending.pop(partition, None)
                self._next.pop(partition, None)
                self._committed.pop(partition, None)
