"""What was produced, counted from the broker's acknowledgements, for tests and operators.

The publisher counts outcomes on its caller's thread, while progress reports and tests read
snapshots from others, so every update takes a lock. "sent" counts acknowledged messages only; a
message is "unconfirmed" while neither acknowledged nor failed.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .simulator import Message


@dataclass(frozen=True)
class LedgerSnapshot:
    """A consistent copy of the counts at one moment."""

    generated: int
    sent: int
    failed: int
    abnormal_sent: int
    sent_by: dict[tuple[str, str], int] = field(default_factory=dict)  # (customer, outcome)
    failed_by: dict[tuple[str, str], int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # exception type -> count

    @property
    def unconfirmed(self) -> int:
        return self.generated - self.sent - self.failed

    def outcomes(self) -> dict[str, int]:
        """Acknowledged messages per expected outcome."""
        totals: Counter[str] = Counter()
        for (_, outcome), count in self.sent_by.items():
            totals[outcome] += count
        return dict(sorted(totals.items()))

    def customers(self) -> dict[str, dict[str, int]]:
        """Acknowledged messages per customer, per expected outcome."""
        table: dict[str, dict[str, int]] = {}
        for (customer_id, outcome), count in sorted(self.sent_by.items()):
            table.setdefault(customer_id, {})[outcome] = count
        return table

    def to_json(self, **context: Any) -> dict[str, Any]:
        failed_outcomes: Counter[str] = Counter()
        for (_, outcome), count in self.failed_by.items():
            failed_outcomes[outcome] += count
        return {
            **context,
            "generated": self.generated,
            "sent": self.sent,
            "failed": self.failed,
            "unconfirmed": self.unconfirmed,
            "outcomes": self.outcomes(),
            "abnormal_readings": self.abnormal_sent,
            "failed_outcomes": dict(sorted(failed_outcomes.items())),
            "errors": dict(sorted(self.errors.items())),
            "customers": self.customers(),
        }


def merge_snapshots(snapshots: list[LedgerSnapshot]) -> LedgerSnapshot:
    """One snapshot of several producers' ledgers (workers.py: one per process)."""
    sent_by: Counter[tuple[str, str]] = Counter()
    failed_by: Counter[tuple[str, str]] = Counter()
    errors: Counter[str] = Counter()
    for snapshot in snapshots:
        sent_by.update(snapshot.sent_by)
        failed_by.update(snapshot.failed_by)
        errors.update(snapshot.errors)
    return LedgerSnapshot(
        generated=sum(s.generated for s in snapshots),
        sent=sum(s.sent for s in snapshots),
        failed=sum(s.failed for s in snapshots),
        abnormal_sent=sum(s.abnormal_sent for s in snapshots),
        sent_by=dict(sent_by),
        failed_by=dict(failed_by),
        errors=dict(errors),
    )


class Ledger:
    """Thread-safe counters of generated, acknowledged and failed messages."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generated = 0
        self._sent = 0
        self._failed = 0
        self._abnormal = 0
        self._sent_by: Counter[tuple[str, str]] = Counter()
        self._failed_by: Counter[tuple[str, str]] = Counter()
        self._errors: Counter[str] = Counter()

    def generated(self, count: int = 1) -> None:
        with self._lock:
            self._generated += count

    def acknowledged(self, message: Message) -> None:
        with self._lock:
            self._sent += 1
            self._sent_by[message.customer_id, message.outcome] += 1
            if message.abnormal:
                self._abnormal += 1

    def acknowledged_all(self, messages: list[Message]) -> None:
        """acknowledged() for many messages under one lock (the publisher settles in bulk)."""
        sent_by = self._sent_by
        abnormal = 0
        with self._lock:
            self._sent += len(messages)
            for message in messages:
                sent_by[message.customer_id, message.outcome] += 1
                abnormal += message.abnormal
            self._abnormal += abnormal

    def failed(self, message: Message, error: BaseException) -> bool:
        """Count a failed delivery; True if it is the first error of its type (worth logging)."""
        name = type(error).__name__
        with self._lock:
            self._failed += 1
            self._failed_by[message.customer_id, message.outcome] += 1
            first = name not in self._errors
            self._errors[name] += 1
        return first

    @property
    def sent(self) -> int:
        return self._sent

    @property
    def failed_count(self) -> int:
        return self._failed

    def snapshot(self) -> LedgerSnapshot:
        with self._lock:
            return LedgerSnapshot(
                generated=self._generated,
                sent=self._sent,
                failed=self._failed,
                abnormal_sent=self._abnormal,
                sent_by=dict(self._sent_by),
                failed_by=dict(self._failed_by),
                errors=dict(self._errors),
            )


def write_ledger(path: Path, document: dict[str, Any]) -> None:
    """Write atomically (temp file + rename): a reader never sees half a ledger."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
