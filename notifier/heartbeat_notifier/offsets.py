"""Which Kafka offsets may be committed: a partition's offset moves past a message once what it
owes every channel is recorded in the delivery log (ledger.record_owed). Delivering is the
log's business from then on, so a slow or dead receiver never holds the offset back."""

from __future__ import annotations

import threading
from collections.abc import Hashable


class OffsetTracker:
    """Per partition: the next offset whose message is not yet recorded, and the last commit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recorded: dict[Hashable, int] = {}  # partition -> one past the last recorded
        self._committed: dict[Hashable, int] = {}

    def recorded(self, positions: dict[Hashable, int]) -> None:
        """Messages up to (not including) these offsets are recorded in the log."""
        with self._lock:
            for partition, offset in positions.items():
                self._recorded[partition] = max(self._recorded.get(partition, 0), offset)

    def committable(self) -> dict[Hashable, int]:
        """partition -> offset to commit, only where it moved since the last call's result was
        marked committed (`mark_committed`)."""
        with self._lock:
            return {
                partition: offset
                for partition, offset in self._recorded.items()
                if offset > self._committed.get(partition, -1)
            }

    def mark_committed(self, offsets: dict[Hashable, int]) -> None:
        with self._lock:
            for partition, offset in offsets.items():
                self._committed[partition] = max(self._committed.get(partition, -1), offset)

    def partitions(self) -> set[Hashable]:
        with self._lock:
            return set(self._recorded)

    def forget(self, partitions) -> None:
        """Partitions whose position the consumer dropped (taken away by a rebalance, the
        member lost, the consumer closed): whoever reads them next starts from the commit."""
        with self._lock:
            for partition in partitions:
                self._recorded.pop(partition, None)
                self._committed.pop(partition, None)
