"""Run the real streaming job (spark-submit via spark-jobs/submit.sh) as a child process.

For tests and benchmarks, which need to start, crash and restart a job of their own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from heartbeat_ops.config import ROOT, StackConfig
from tests.support import kafka_login


def wait_for(condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.25) -> None:
    """Poll until `condition()` holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll)


class StreamJob:
    """One job instance bound to a topic and a checkpoint; start, kill and restart it."""

    def __init__(
        self,
        stack: StackConfig,
        topic: str,
        checkpoint: str,
        log_path: Path,
        *,
        root: Path = ROOT,
        **overrides: str,
    ) -> None:
        """`root`: the checkout whose spark-jobs/submit.sh runs (a benchmark's baseline revision
        is another one)."""
        self.submit = root / "spark-jobs" / "submit.sh"
        self.env = {
            **os.environ,
            **stack.environment(),
            "KAFKA_TOPIC": topic,
            "HEARTBEAT_CHECKPOINT_DIR": checkpoint,
            # Not "0 seconds": an idle job then asks Kafka for new offsets every 10 ms and, with
            # its broker, takes about half a core doing nothing (measured: 27 % + 21 % of a core,
            # against 7 % + 6 % at 250 ms), on machines the suite keeps busy. 250 ms adds at
            # most that to a test's wait.
            "HEARTBEAT_TRIGGER_INTERVAL": "250 milliseconds",
            "SPARK_UI_PORT": "0",
            "SPARK_MASTER": "local[2]",
            **overrides,
        }
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        kafka_login.grant_job(
            self.env["KAFKA_BOOTSTRAP_SERVERS"], topic, self.env["KAFKA_ALERTS_TOPIC"]
        )

    def start(self, **overrides: str) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            ["bash", str(self.submit)],
            env={**self.env, **overrides},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the JVM and Python driver die together
        )

    def kill(self) -> None:
        """SIGKILL the whole job, as a crash or an OOM killer would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
