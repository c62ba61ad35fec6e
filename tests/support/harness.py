"""The moving parts of a fault test: a steady producer, a supervised job, lag.

The faults themselves (a broker SIGKILLed, PostgreSQL stopped) are the tests' world's
(tests/support/world.py): never the live stack's processes, never a process found by name.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg2

from heartbeat_ops.config import ROOT, StackConfig
from tests.support import kafka
from tests.support.db import superuser_query
from tests.support.stream_job import StreamJob, wait_for


class SteadyProducer:
    """`heartbeat-producer` at a fixed rate until SIGTERM, writing its ledger to a file."""

    def __init__(
        self, stack: StackConfig, topic: str, workdir: Path, *, prefix: str, rate: float = 100.0,
        customers: int = 20, malformed_rate: float = 0.05, seed: int = 7,
        abnormal_rate: float = 0.02,
    ) -> None:  # fmt: skip
        self.ledger_path = workdir / f"ledger-{prefix}.json"
        self.log_path = workdir / f"producer-{prefix}.log"
        self.rate = rate
        command = [
            sys.executable, "-m", "heartbeat_producer",
            "--bootstrap-servers", stack.kafka_bootstrap_servers, "--topic", topic,
            "--rate", str(rate), "--customers", str(customers), "--customer-prefix", prefix,
            "--malformed-rate", str(malformed_rate), "--seed", str(seed),
            "--abnormal-rate", str(abnormal_rate),
            "--ledger", str(self.ledger_path), "--progress-interval", "1",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip

    def ledger(self) -> dict:
        return json.loads(self.ledger_path.read_text())

    def sent(self) -> int:
        try:
            return self.ledger()["sent"]
        except (FileNotFoundError, json.JSONDecodeError):
            return 0

    def stop(self, timeout: float = 60.0) -> dict:
        """SIGTERM, as supervisord stops it; returns the final ledger."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        assert code == 0, f"producer exited {code}: {self.log_path.read_text()[-2000:]}"
        ledger = self.ledger()
        assert ledger["finished"], ledger
        return ledger

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class SupervisedJob:
    """A StreamJob restarted whenever it exits, as supervisord restarts the real one."""

    def __init__(self, job: StreamJob, backoff: float = 1.0) -> None:
        self.job = job
        self.backoff = backoff
        self.starts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="job-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                process = self.job.process
                if process is None or process.poll() is not None:
                    self.job.start()
                    self.starts += 1
            self._stop.wait(self.backoff)

    def pids(self) -> list[int]:
        """Every process of the job's group (the spark-submit shell, JVM, Python driver)."""
        process = self.job.process
        if process is None or process.poll() is not None:
            return []
        return process_group(process.pid)

    def kill(self) -> None:
        """SIGKILL the job's whole process group; the loop starts a new one."""
        with self._lock:
            process = self.job.process
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        with self._lock:
            self.job.stop()


def process_group(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return pids


# --- lag -----------------------------------------------------------------------------------------


def topic_end(stack: StackConfig, topic: str) -> int | None:
    """Messages in the topic (sum of end offsets), or None while the broker is away."""
    return kafka.topic_end(stack.kafka_bootstrap_servers, topic)


def stored(stack: StackConfig, topic: str) -> int | None:
    """Messages of the topic in PostgreSQL (valid + quarantined), or None while it is away."""
    try:
        rows = superuser_query(
            stack,
            "SELECT (SELECT count(*) FROM heart_rate_readings WHERE kafka_topic = %(t)s)"
            " + (SELECT count(*) FROM rejected_readings WHERE kafka_topic = %(t)s)",
            {"t": topic},
        )
    except psycopg2.OperationalError:
        return None
    return rows[0][0]


# Changes exactly when some sink commits a batch (the tests' database has one sink at a time).
_COMMITTED_BATCHES = "SELECT coalesce(sum(last_batch_id), -1) FROM sink_progress"


def wait_for_a_commit(stack: StackConfig, timeout: float = 120.0) -> None:
    """Return the moment a batch's rows become visible (its transaction just committed).

    Polls the sinks' committed batch ids every few milliseconds (each batch transaction records
    its id in sink_progress as it commits its rows), so a kill that follows lands in the
    short window after the sink's commit and before Spark records the batch as done: the
    replay case an idempotent sink must absorb.
    """
    conn = psycopg2.connect(stack.admin_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:

            def committed() -> int:
                cur.execute(_COMMITTED_BATCHES)
                return cur.fetchone()[0]

            first = committed()
            wait_for(lambda: committed() != first, timeout, "a batch to commit", poll=0.003)
    finally:
        conn.close()


def lag(stack: StackConfig, topic: str) -> int | None:
    end, landed = topic_end(stack, topic), stored(stack, topic)
    return None if end is None or landed is None else end - landed


def baseline_lag(stack: StackConfig, topic: str, samples: int = 5) -> float:
    """The lag of a healthy pipeline under this load: the median of a few samples."""
    values = []
    for _ in range(samples):
        value = lag(stack, topic)
        if value is not None:
            values.append(value)
        time.sleep(1.0)  # sampling interval
    return statistics.median(values) if values else 0.0


def wait_caught_up(
    stack: StackConfig, topic: str, threshold: float, timeout: float, what: str,
    must_store: int = 0,
) -> float:  # fmt: skip
    """Seconds until the lag is back at or under `threshold` messages, with at least
    `must_store` messages stored (what the topic held when the fault began: a job that was
    just killed has not caught up merely because the lag has not grown yet)."""
    started = time.monotonic()

    def normal() -> bool:
        end, landed = topic_end(stack, topic), stored(stack, topic)
        if end is None or landed is None:
            return False
        return landed >= must_store and end - landed <= threshold

    wait_for(normal, timeout, what, poll=0.5)
    return time.monotonic() - started


def normal_lag(baseline: float, rate: float) -> float:
    """'Back to normal': at most twice the healthy lag, and never less than 5 s of traffic.

    On the shared 2-core machine a healthy batch takes 1-4 s, so a few seconds of traffic is
    the lag of a pipeline that keeps up.
    """
    return max(2 * baseline, 5 * rate)
