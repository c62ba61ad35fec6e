"""One producer run over several processes: a shard of the customers each, one ledger.

kafka-python spends about 15-20 us of Python per message in send() and on its sender thread,
under one GIL: one process tops out near one core's worth, well below 50,000 readings/s here.
Each worker process runs the ordinary run loop (runner.run) on every n-th customer at that
share of the rate, with its own idempotent producer, so a customer's readings still leave one
producer in order. The parent relays a stop request (SIGTERM/SIGINT, or its own death) to the
workers, merges their ledgers for the progress lines and the ledger file, and reports only
what every worker reported as acknowledged after its own flush.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from kafka.errors import KafkaError

from .config import PublisherSettings, RunSettings, SimulationConfig
from .ledger import LedgerSnapshot, merge_snapshots, write_ledger
from .publisher import Publisher
from .runner import RunReport, ledger_context, log_progress, run, stop_on_signals

log = logging.getLogger(__name__)

# Below this rate one process has cores to spare; above it, one worker per core.
AUTO_WORKERS_FROM_RATE = 10_000.0
MAX_AUTO_WORKERS = 4
_RELAY_POLL_SECONDS = 0.2
_EMPTY = LedgerSnapshot(generated=0, sent=0, failed=0, abnormal_sent=0)


def auto_workers(rate: float, customers: int) -> int:
    """How many processes a run at `rate` gets by default: one below AUTO_WORKERS_FROM_RATE
    (the live feed, the tests), else one per core, at most MAX_AUTO_WORKERS and customers."""
    if rate < AUTO_WORKERS_FROM_RATE:
        return 1
    return max(1, min(os.cpu_count() or 1, MAX_AUTO_WORKERS, customers))


def shard_counts(count: int, customers: int, shards: int) -> list[int]:
    """`count` readings split over the shards in proportion to their customers, summing to it.

    Shard i holds customers i, i + shards, ...; a reading belongs to the customer it is for.
    """
    sizes = [len(range(index, customers, shards)) for index in range(shards)]
    counts = [count * size // customers for size in sizes]
    for index in range(count - sum(counts)):
        counts[index] += 1
    return counts


def produce(
    simulation: SimulationConfig,
    publishing: PublisherSettings,
    settings: RunSettings,
    *,
    start: datetime | None = None,
    stop: threading.Event | None = None,
) -> RunReport:
    """runner.run() in this process for one worker; otherwise settings.workers processes."""
    workers = min(settings.workers, simulation.customers)
    if workers == 1:
        return run(simulation, publishing, settings, start=start, stop=stop)
    return _run_workers(simulation, publishing, settings, workers, start, stop)


def _run_workers(
    simulation: SimulationConfig,
    publishing: PublisherSettings,
    settings: RunSettings,
    workers: int,
    start: datetime | None,
    stop: threading.Event | None,
) -> RunReport:
    stop = stop if stop is not None else threading.Event()
    start = start if start is not None else datetime.now(UTC)  # one simulated clock for all
    counts = (
        shard_counts(settings.count, simulation.customers, workers)
        if settings.count is not None
        else [None] * workers
    )
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited threads
    # One pipe per worker carries the stop request; its end of file (the parent gone) does too.
    # (Not a multiprocessing.Event: a worker that exits inside Event.wait() leaves the Event's
    # condition counting a sleeper, and the parent's next set() waits for it forever.)
    pipes = [context.Pipe(duplex=False) for _ in range(workers)]
    stop_workers = _StopSignal([sender for _, sender in pipes])
    inbox = context.Queue()
    processes = []
    for index in range(workers):
        shard_settings = replace(settings, count=counts[index], ledger_path=None, workers=1)
        job = (index, workers, simulation, publishing, shard_settings, start)
        links = (pipes[index][0], inbox, os.getpid(), logging.getLogger().level)
        name = f"heartbeat-producer-{index}"
        processes.append(context.Process(target=_worker, name=name, args=job + links))
    reason: list[str] = []
    state = _State(workers)
    began = time.monotonic()

    def write(finished: bool) -> None:
        if settings.ledger_path is None:
            return
        document = ledger_context(
            simulation, publishing, settings, start, state.idempotent(), began
        )
        document["workers"] = workers
        document["finished"] = finished
        if finished:
            document["stopped_by"] = state.stopped_by(reason)
            document["elapsed_seconds"] = round(state.elapsed(), 3)
        write_ledger(settings.ledger_path, state.merged().to_json(**document))

    with stop_on_signals(stop, reason):
        log.info(
            "producing to %s at %s: %d customers in %d worker processes, %g readings/s, seed %d",
            publishing.topic, publishing.bootstrap_servers, simulation.customers, workers,
            settings.rate, simulation.seed,
        )  # fmt: skip
        for process in processes:
            process.start()
        for receiver, _ in pipes:
            receiver.close()  # the workers hold them now
        try:
            _supervise(processes, inbox, state, stop, stop_workers, settings, write)
        finally:
            stop_workers.set()
            for process in processes:
                process.join(timeout=settings.flush_timeout + 10.0)
                if process.is_alive():  # wedged past its own flush timeout: nothing more to wait
                    process.kill()
                    process.join()
    if state.errors and not state.reports:
        raise KafkaError("; ".join(sorted(set(state.errors.values()))))  # each worker's, once
    for index, error in sorted(state.errors.items()):
        log.error("worker %d failed: %s", index, error)
    report = RunReport(
        snapshot=state.merged(),
        elapsed=state.elapsed(),
        idempotent=state.idempotent(),
        flushed=not state.errors and all(r.flushed for r in state.reports.values()),
        stopped_by=state.stopped_by(reason),
    )
    write(True)
    (log.info if report.ok else log.error)(report.summary())
    return report


class _StopSignal:
    """Asks every worker to stop, once, through its pipe."""

    def __init__(self, senders: list[Any]) -> None:
        self._senders = senders
        self._sent = False

    def set(self) -> None:
        if self._sent:
            return
        self._sent = True
        for sender in self._senders:
            with contextlib.suppress(OSError):  # that worker has exited already
                sender.send_bytes(b"stop")
            sender.close()


class _State:
    """What the parent knows of its workers: latest snapshots, final reports, errors."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.latest: dict[int, LedgerSnapshot] = {}
        self.reports: dict[int, RunReport] = {}
        self.spans: dict[int, tuple[float, float]] = {}  # (began, ended), monotonic
        self.errors: dict[int, str] = {}
        self.producers: dict[int, bool] = {}  # idempotent, once connected

    def settled(self, index: int) -> bool:
        return index in self.reports or index in self.errors

    def done(self) -> bool:
        return len(self.reports) + len(self.errors) == self.workers

    def merged(self) -> LedgerSnapshot:
        return merge_snapshots([self.latest.get(i, _EMPTY) for i in range(self.workers)])

    def idempotent(self) -> bool:
        return bool(self.producers) and all(self.producers.values())

    def elapsed(self) -> float:
        """From the first worker's first reading to the last worker's last acknowledgement."""
        if not self.spans:
            return 0.0
        return max(e for _, e in self.spans.values()) - min(b for b, _ in self.spans.values())

    def stopped_by(self, reason: list[str]) -> str:
        if reason:
            return reason[0]
        if self.errors:
            return "worker failure"
        stops = sorted({r.stopped_by for r in self.reports.values()})
        return stops[0] if len(stops) == 1 else "stop request"


def _supervise(
    processes: list[Any],
    inbox: Any,
    state: _State,
    stop: threading.Event,
    stop_workers: Any,
    settings: RunSettings,
    write: Any,
) -> None:
    """Relay stop requests, take the workers' messages, log and write progress until all end."""
    last_time, last_sent = time.monotonic(), 0
    due = last_time + settings.progress_interval
    while not state.done():
        if stop.is_set() or state.errors:  # one failed worker stops the others
            stop_workers.set()
        try:
            kind, index, *payload = inbox.get(timeout=_RELAY_POLL_SECONDS)
        except queue.Empty:
            for index, process in enumerate(processes):
                if process.exitcode is not None and not state.settled(index):
                    state.errors[index] = f"exited with code {process.exitcode} without a report"
            continue
        if kind == "connected":
            state.producers[index] = payload[0]
        elif kind == "progress":
            state.latest[index] = payload[0]
        elif kind == "done":
            (report,) = payload
            state.latest[index] = report.snapshot
            state.reports[index] = report
            state.spans[index] = (report.began, report.began + report.elapsed)
        elif kind == "error":
            state.errors[index] = payload[0]
        now = time.monotonic()
        if now >= due:
            merged = state.merged()
            log_progress(merged, (merged.sent - last_sent) / max(now - last_time, 1e-9))
            last_time, last_sent = now, merged.sent
            due = now + settings.progress_interval
            write(False)


def _worker(
    index: int,
    workers: int,
    simulation: SimulationConfig,
    publishing: PublisherSettings,
    settings: RunSettings,
    start: datetime,
    stop_request: Any,
    outbox: Any,
    parent: int,
    log_level: int,
) -> None:
    """One worker process: runner.run on shard `index`, its ledger sent to the parent."""
    logging.basicConfig(
        level=log_level, format=f"%(asctime)s %(levelname)s %(name)s[{index}]: %(message)s"
    )
    if log_level > logging.DEBUG:
        logging.getLogger("kafka").setLevel(logging.WARNING)
    stop = threading.Event()

    def relay() -> None:  # the parent's stop request, or the parent gone: stop and flush
        while not stop.is_set():
            if stop_request.poll(_RELAY_POLL_SECONDS) or os.getppid() != parent:
                stop.set()

    threading.Thread(target=relay, name="stop-relay", daemon=True).start()

    def connect(settings_: PublisherSettings) -> Publisher:
        publisher = Publisher(settings_)
        outbox.put(("connected", index, publisher.idempotent))
        return publisher

    try:
        report = run(
            simulation, publishing, settings, start=start, stop=stop,
            publisher_factory=connect, shard=(index, workers),
            report_progress=lambda snapshot: outbox.put(("progress", index, snapshot)),
        )  # fmt: skip
    except Exception as error:  # the parent reports it; the other workers stop
        text = str(error)  # kafka-python's errors start with their own name already
        name = type(error).__name__
        outbox.put(("error", index, text if text.startswith(name) else f"{name}: {text}"))
        return
    finally:
        stop.set()
    outbox.put(("done", index, report))
