"""The run loop without Kafka: limits, ledger file, failure accounting, and SIGTERM handling."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import UTC, datetime

import pytest

from heartbeat_producer.config import PublisherSettings, RunSettings, SimulationConfig
from heartbeat_producer.ledger import Ledger
from heartbeat_producer.runner import run
from heartbeat_producer.simulator import VALID, Message
from tests.support.stream_job import wait_for

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)


class FakePublisher:
    """Buffers like KafkaProducer: nothing is acknowledged until flush()."""

    idempotent = True

    def __init__(self, settings: PublisherSettings, fail_every: int = 0) -> None:
        self.settings = settings
        self.ledger = Ledger()
        self.buffered: list[Message] = []
        self.delivered: list[Message] = []
        self.fail_every = fail_every
        self.closed = False

    def publish_all(self, messages, stopping=None) -> int:
        handed = 0
        for message in messages:
            handed += 1
            self.ledger.generated()
            self.buffered.append(message)
            if stopping is not None and stopping():
                break
        return handed

    def flush(self, timeout: float | None = None) -> bool:
        for index, message in enumerate(self.buffered, start=len(self.delivered) + 1):
            if self.fail_every and index % self.fail_every == 0:
                self.ledger.failed(message, TimeoutError("delivery timed out"))
            else:
                self.ledger.acknowledged(message)
        self.delivered += self.buffered
        self.buffered = []
        return True

    def close(self, timeout: float = 5.0) -> None:
        self.closed = True


def produce(settings: RunSettings, fail_every: int = 0, **kwargs: object):
    publishers: list[FakePublisher] = []

    def factory(publishing: PublisherSettings) -> FakePublisher:
        publishers.append(FakePublisher(publishing, fail_every))
        return publishers[-1]

    config = SimulationConfig(seed=9, invalid_rate=0.01, malformed_rate=0.02)
    report = run(config, PublisherSettings(topic="t"), settings, start=START,
                 publisher_factory=factory, **kwargs)  # type: ignore[arg-type]  # fmt: skip
    return report, publishers[0]


def test_count_limit_and_ledger_file(tmp_path):
    ledger_path = tmp_path / "ledger.json"
    report, publisher = produce(RunSettings(rate=100_000.0, count=5000, ledger_path=ledger_path))
    assert report.ok and report.stopped_by == "count" and publisher.closed
    assert len(publisher.delivered) == 5000
    document = json.loads(ledger_path.read_text())
    assert document["finished"] is True
    assert (document["generated"], document["sent"], document["failed"]) == (5000, 5000, 0)
    assert document["unconfirmed"] == 0
    assert sum(document["outcomes"].values()) == 5000
    assert document["outcomes"]["out_of_range"] == 50
    assert sum(document["outcomes"][r] for r in document["outcomes"] if r != VALID) == 150
    per_customer = document["customers"]
    assert len(per_customer) == 100
    assert sum(sum(c.values()) for c in per_customer.values()) == 5000
    assert all(sum(c.values()) == 50 for c in per_customer.values())
    assert document["seed"] == 9 and document["start"] == "2026-11-29T20:00:00.000Z"


def test_duration_limit_is_wall_clock_at_the_asked_rate():
    began = time.monotonic()
    report, publisher = produce(RunSettings(rate=2000.0, duration=0.5))
    elapsed = time.monotonic() - began
    assert report.ok and report.stopped_by == "duration"
    assert 0 < len(publisher.delivered) <= 1000
    assert 0.4 <= elapsed < 5


def test_failures_are_counted_and_reported(tmp_path):
    ledger_path = tmp_path / "ledger.json"
    settings = RunSettings(rate=100_000.0, count=1000, ledger_path=ledger_path)
    report, _ = produce(settings, fail_every=10)
    assert not report.ok
    assert (report.snapshot.sent, report.snapshot.failed) == (900, 100)
    document = json.loads(ledger_path.read_text())
    assert document["errors"] == {"TimeoutError": 100}
    assert sum(document["failed_outcomes"].values()) == 100
    assert sum(document["outcomes"].values()) == 900


def test_a_stop_request_before_the_first_reading_produces_nothing():
    stop = threading.Event()
    stop.set()
    report, publisher = produce(RunSettings(rate=100.0), stop=stop)
    assert report.ok and publisher.delivered == [] and publisher.closed


def test_sigterm_stops_flushes_everything_and_restores_the_handler():
    previous = signal.getsignal(signal.SIGTERM)
    holder: dict[str, FakePublisher] = {}

    def factory(publishing: PublisherSettings) -> FakePublisher:
        holder["publisher"] = FakePublisher(publishing)
        return holder["publisher"]

    def busy() -> bool:
        publisher = holder.get("publisher")
        return publisher is not None and len(publisher.buffered) >= 2000

    def terminate_once_busy() -> None:
        wait_for(busy, 30, "the producer to buffer 2,000 readings", poll=0.005)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_once_busy)
    killer.start()
    report = run(SimulationConfig(seed=1), PublisherSettings(topic="t"),
                 RunSettings(rate=50_000.0, duration=60.0), publisher_factory=factory)  # fmt: skip
    killer.join()
    assert report.stopped_by == "SIGTERM"
    assert report.ok
    assert report.snapshot.sent == report.snapshot.generated >= 2000
    assert len(holder["publisher"].delivered) == report.snapshot.sent
    assert report.elapsed < 30
    assert signal.getsignal(signal.SIGTERM) == previous
