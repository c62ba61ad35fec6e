"""The ledger check: what producers reported as sent equals what PostgreSQL holds.

Per customer (valid readings), per expected outcome (quarantine reasons), in total (no message
missing, none stored twice), and the minute rollups equal SQL over the stored readings. Only
behaviour is compared, so the check stays valid whatever the sink looks like inside.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from heartbeat_ops.config import StackConfig
from tests.support.db import superuser_cursor
from tests.support.rollups import rollup_mismatches
from tests.support.stream_job import wait_for

VALID = "valid"


@dataclass(frozen=True)
class Expected:
    """What one or more producer runs had acknowledged by the broker."""

    valid_by_customer: Counter[str]
    outcomes: Counter[str]
    sent: int
    failed: int

    @classmethod
    def from_ledgers(cls, documents: Iterable[dict]) -> Expected:
        valid: Counter[str] = Counter()
        outcomes: Counter[str] = Counter()
        sent = failed = 0
        for doc in documents:
            sent += doc["sent"]
            failed += doc["failed"]
            outcomes.update(doc["outcomes"])
            for customer, by_outcome in doc["customers"].items():
                if by_outcome.get(VALID):
                    valid[customer] += by_outcome[VALID]
        return cls(valid, +outcomes, sent, failed)

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> Expected:
        return cls.from_ledgers(json.loads(Path(p).read_text()) for p in paths)

    def retire(self, readings: Counter[str]) -> Expected:
        """Less valid readings (per customer) that retention deliberately retired: those are in
        no table by design; every other message must still be in exactly one place."""
        assert not readings - self.valid_by_customer, "retired readings that were never sent"
        retired = sum(readings.values())
        return Expected(
            self.valid_by_customer - readings,
            self.outcomes - Counter({VALID: retired}),
            self.sent - retired,
            self.failed,
        )

    @property
    def rejected(self) -> Counter[str]:
        return Counter({k: v for k, v in self.outcomes.items() if k != VALID})


@dataclass
class LedgerReport:
    expected: Expected
    valid_by_customer: Counter[str]
    rejected: Counter[str]
    stored: int
    duplicate_provenance: int
    duplicate_readings: int
    rollup_mismatches: list[tuple] = field(default_factory=list)

    @property
    def rows_match(self) -> bool:
        return (
            self.valid_by_customer == self.expected.valid_by_customer
            and self.rejected == self.expected.rejected
            and self.stored == self.expected.sent
        )

    @property
    def ok(self) -> bool:
        return (
            self.rows_match
            and self.duplicate_provenance == 0
            and self.duplicate_readings == 0
            and not self.rollup_mismatches
        )

    def summary(self) -> str:
        return (
            f"sent={self.expected.sent} stored={self.stored} (valid "
            f"{sum(self.valid_by_customer.values())}/{sum(self.expected.valid_by_customer.values())}"
            f", quarantined {sum(self.rejected.values())}/{sum(self.expected.rejected.values())})"
            f" duplicates={self.duplicate_provenance}+{self.duplicate_readings}"
            f" rollup mismatches={len(self.rollup_mismatches)}"
        )

    def explain(self) -> str:
        lines = [self.summary()]
        missing = self.expected.valid_by_customer - self.valid_by_customer
        extra = self.valid_by_customer - self.expected.valid_by_customer
        if missing:
            lines.append(f"valid readings missing per customer: {dict(missing)}")
        if extra:
            lines.append(f"valid readings beyond the ledger: {dict(extra)}")
        if self.rejected != self.expected.rejected:
            lines.append(
                f"quarantined {dict(self.rejected)} != expected {dict(self.expected.rejected)}"
            )
        if self.rollup_mismatches:
            lines.append(
                f"first rollup mismatches (stored, from readings): {self.rollup_mismatches[:5]}"
            )
        return "\n".join(lines)


def check(
    stack: StackConfig, topic: str, expected: Expected, *, rollups: bool = True
) -> LedgerReport:
    """One comparison of the ledger with the database, as the superuser (reads everything)."""
    with superuser_cursor(stack) as cur:
        cur.execute(
            "SELECT customer_id, count(*) FROM heart_rate_readings WHERE kafka_topic = %s"
            " GROUP BY 1",
            (topic,),
        )
        valid = Counter(dict(cur.fetchall()))
        cur.execute(
            "SELECT reason, count(*) FROM rejected_readings WHERE kafka_topic = %s GROUP BY 1",
            (topic,),
        )
        rejected = Counter(dict(cur.fetchall()))
        cur.execute(
            "SELECT count(*) FROM (SELECT kafka_partition, kafka_offset FROM heart_rate_readings"
            " WHERE kafka_topic = %(t)s UNION ALL SELECT kafka_partition, kafka_offset"
            " FROM rejected_readings WHERE kafka_topic = %(t)s) p"
            " GROUP BY kafka_partition, kafka_offset HAVING count(*) > 1",
            {"t": topic},
        )
        duplicate_provenance = len(cur.fetchall())
        # The simulator stamps each customer's readings strictly increasing: the same customer and
        # time twice means one reading was delivered (or written) twice.
        cur.execute(
            'SELECT count(*) - count(DISTINCT (customer_id, "timestamp")) FROM heart_rate_readings'
            " WHERE kafka_topic = %s",
            (topic,),
        )
        duplicate_readings = cur.fetchone()[0]
        mismatches: list[tuple] = []
        if rollups:
            mismatches = rollup_mismatches(cur, topic)
    return LedgerReport(
        expected=expected,
        valid_by_customer=valid,
        rejected=rejected,
        stored=sum(valid.values()) + sum(rejected.values()),
        duplicate_provenance=duplicate_provenance,
        duplicate_readings=duplicate_readings,
        rollup_mismatches=mismatches,
    )


def wait_until_balanced(
    stack: StackConfig, topic: str, expected: Expected, *, timeout: float, rollups: bool = True
) -> tuple[LedgerReport, float]:
    """Poll until the ledger balances (or time runs out); (last report, seconds waited).

    Rows can only grow while the job catches up, so the first balanced report is final unless
    something later writes a duplicate, which the caller's assertion on `ok` would catch too.
    """
    started = time.monotonic()
    reports: list[LedgerReport] = []

    def settled() -> bool:
        reports.append(check(stack, topic, expected, rollups=rollups))
        return reports[-1].ok or reports[-1].stored > expected.sent

    with suppress(AssertionError):  # out of time: the caller asserts on the last report
        wait_for(settled, timeout, "the ledger to balance", poll=1.0)
    return reports[-1], time.monotonic() - started
