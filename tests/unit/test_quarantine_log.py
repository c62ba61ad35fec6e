"""The quarantine log's rate limit: one summary per batch, samples at most every `sample_every`."""

from __future__ import annotations

import logging

import pytest

from heartbeat_stream.sinks import quarantine_log
from heartbeat_stream.sinks.batch_commit import BatchOutcome
from heartbeat_stream.sinks.quarantine_log import QuarantineLog

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def outcome(samples: int) -> BatchOutcome:
    rows = [("malformed_json", "value is not valid JSON", 0, i) for i in range(samples)]
    return BatchOutcome(valid=10, rejected_by_reason={"malformed_json": 5}, samples=rows)


def test_samples_are_rate_limited_and_summaries_are_not(monkeypatch, caplog):
    clock = Clock()
    monkeypatch.setattr(quarantine_log.time, "monotonic", clock.monotonic)
    qlog = QuarantineLog(samples_per_line=3, sample_every=30.0)
    with caplog.at_level(logging.WARNING, logger="heartbeat.quarantine"):
        for batch in range(10):  # ten batches within 9 s: samples once, summaries ten times
            qlog.record(batch, outcome(qlog.wants_samples()))
            clock.now += 1.0
        assert qlog.wants_samples() == 0
        clock.now += 30.0
        assert qlog.wants_samples() == 3
    lines = [r.getMessage() for r in caplog.records]
    assert sum("quarantined 5 of 15" in line for line in lines) == 10
    assert sum(line.startswith("  e.g.") for line in lines) == 3


def test_batches_without_rejects_log_nothing(caplog):
    with caplog.at_level(logging.WARNING, logger="heartbeat.quarantine"):
        QuarantineLog().record(1, BatchOutcome(valid=10, rejected_by_reason={}))
    assert caplog.records == []
