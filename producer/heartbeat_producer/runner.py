"""One producer run: simulate, pace, publish, report; stop cleanly on SIGINT/SIGTERM or a limit.

On a stop signal the loop stops generating, flushes what the producer still buffers, and reports:
readings handed to the producer are not lost, and "sent" counts only acknowledged ones.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from heartbeat_contract import format_timestamp

from .config import PublisherSettings, RunSettings, SimulationConfig
from .ledger import LedgerSnapshot, write_ledger
from .pacing import MAX_SLEEP_SECONDS, Pacer
from .publisher import Publisher
from .simulator import Simulator

log = logging.getLogger(__name__)

# A batch is at most ~50 ms of work at full speed, so stop requests and progress stay timely.
MAX_BATCH = 2000


@dataclass(frozen=True)
class RunReport:
    snapshot: LedgerSnapshot
    elapsed: float
    idempotent: bool
    flushed: bool
    stopped_by: str
    began: float = 0.0  # time.monotonic() at the first reading (system-wide on Linux)

    @property
    def ok(self) -> bool:
        """Everything generated was acknowledged: nothing failed, nothing left unconfirmed."""
        return self.flushed and self.snapshot.failed == 0 and self.snapshot.unconfirmed == 0

    def summary(self) -> str:
        s = self.snapshot
        rate = s.sent / self.elapsed if self.elapsed > 0 else 0.0
        return (
            f"stopped by {self.stopped_by}: generated={s.generated} sent={s.sent} "
            f"failed={s.failed} unconfirmed={s.unconfirmed} in {self.elapsed:.1f}s "
            f"({rate:,.0f}/s); idempotent={self.idempotent}"
        )


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, reason: list[str]) -> Iterator[None]:
    """SIGINT/SIGTERM set `stop` (and name the signal) instead of killing the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("%s again: already stopping, still flushing", name)
            return
        log.info("%s: stopping, flushing buffered readings", name)
        reason.append(name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Progress:
    """Every `interval` seconds: a compact progress line and the ledger file refreshed, or the
    snapshot handed to `report` instead (a worker process reporting to its parent)."""

    def __init__(
        self,
        interval: float,
        publisher: Publisher,
        write: Callable[[bool], None],
        report: Callable[[LedgerSnapshot], None] | None = None,
    ):
        self.interval = interval
        self.publisher = publisher
        self.write = write
        self.report = report
        self.last_time = time.monotonic()
        self.last_sent = 0
        self.due = self.last_time + interval

    def tick(self, now: float) -> None:
        if now < self.due:
            return
        self.due = now + self.interval
        s = self.publisher.ledger.snapshot()
        if self.report is not None:
            self.report(s)
            return
        log_progress(s, (s.sent - self.last_sent) / max(now - self.last_time, 1e-9))
        self.last_time, self.last_sent = now, s.sent
        self.write(False)


def log_progress(s: LedgerSnapshot, rate: float) -> None:
    log.info(
        "sent=%d (%.0f/s) failed=%d unconfirmed=%d generated=%d",
        s.sent, rate, s.failed, s.unconfirmed, s.generated,
    )  # fmt: skip


def run(
    simulation: SimulationConfig,
    publishing: PublisherSettings,
    settings: RunSettings,
    *,
    start: datetime | None = None,
    stop: threading.Event | None = None,
    publisher_factory: Callable[[PublisherSettings], Publisher] = Publisher,
    shard: tuple[int, int] = (0, 1),
    report_progress: Callable[[LedgerSnapshot], None] | None = None,
) -> RunReport:
    """Produce until the count or duration is reached, or until stopped; then flush and report.

    `shard` (index, count) produces only that share of the customers, at their share of the
    rate (settings.count is then this shard's own count); `report_progress` receives the
    ledger's snapshots instead of the progress lines (workers.py runs shards in processes).
    """
    stop = stop if stop is not None else threading.Event()
    start = start if start is not None else datetime.now(UTC)
    reason: list[str] = []
    simulator = Simulator(simulation, start=start, rate=settings.rate, shard=shard)
    limit = settings.count
    if settings.duration is not None:
        by_duration = math.ceil(settings.duration * simulator.rate)
        limit = by_duration if limit is None else min(limit, by_duration)
    began = time.monotonic()  # reset once connected: connecting is not producing

    with stop_on_signals(stop, reason):
        publisher = publisher_factory(publishing)

        def write(finished: bool) -> None:
            if settings.ledger_path is None:
                return
            context = ledger_context(
                simulation, publishing, settings, start, publisher.idempotent, began
            )
            context["finished"] = finished
            if finished:
                context["stopped_by"] = reason[0] if reason else "stop request"
            write_ledger(settings.ledger_path, publisher.ledger.snapshot().to_json(**context))

        try:
            log.info(
                "producing to %s at %s: %d customers, %g readings/s, seed %d, idempotent=%s",
                publishing.topic, publishing.bootstrap_servers, simulation.customers,
                settings.rate, simulation.seed, publisher.idempotent,
            )  # fmt: skip
            stream = iter(simulator)
            began = time.monotonic()
            tick = min(publishing.linger_ms / 1000, MAX_SLEEP_SECONDS)
            pacer = Pacer(simulator.rate, max_batch=MAX_BATCH, tick=tick)
            progress = _Progress(settings.progress_interval, publisher, write, report_progress)
            deadline = began + settings.duration if settings.duration is not None else math.inf
            publish_all, stopping = publisher.publish_all, stop.is_set
            produced = 0
            while not stopping():
                batch = pacer.next_batch()
                if limit is not None:
                    batch = min(batch, limit - produced)
                # Each send may block up to max_block_ms if the broker is away; stopping() is
                # asked after every one.
                produced += publish_all(islice(stream, batch), stopping)
                now = time.monotonic()
                if limit is not None and produced >= limit:
                    by_count = settings.count is not None and produced >= settings.count
                    reason.append("count" if by_count else "duration")
                    break
                if now >= deadline:
                    reason.append("duration")
                    break
                progress.tick(now)
            flushed = publisher.flush(timeout=settings.flush_timeout)
            if not flushed:
                log.error("flush timed out after %.0fs", settings.flush_timeout)
            report = RunReport(
                snapshot=publisher.ledger.snapshot(),
                elapsed=time.monotonic() - began,
                idempotent=publisher.idempotent,
                flushed=flushed,
                stopped_by=reason[0] if reason else "stop request",
                began=began,
            )
            write(True)
        finally:
            publisher.close(timeout=5.0)
    (log.info if report.ok else log.error)(report.summary())
    return report


def ledger_context(
    simulation: SimulationConfig,
    publishing: PublisherSettings,
    settings: RunSettings,
    start: datetime,
    idempotent: bool,
    began: float,
) -> dict[str, Any]:
    """What the ledger file says about the run beside its counts."""
    return {
        "topic": publishing.topic,
        "bootstrap_servers": publishing.bootstrap_servers,
        "seed": simulation.seed,
        "start": format_timestamp(start.astimezone(UTC)),
        "customers_simulated": simulation.customers,
        "rate": settings.rate,
        "invalid_rate": simulation.invalid_rate,
        "abnormal_rate": simulation.abnormal_rate,
        "malformed_rate": simulation.malformed_rate,
        "linger_ms": publishing.linger_ms,
        "batch_size": publishing.batch_size,
        "compression": publishing.compression,
        "idempotent": idempotent,
        "elapsed_seconds": round(time.monotonic() - began, 3),
    }
