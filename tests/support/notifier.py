"""The real notifier process for tests and the benchmark: started, killed and restarted on a
topic and consumer group of the caller's own, against the tests' database."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from pathlib import Path

from psycopg2.extensions import cursor

from heartbeat_notifier.signing import new_secret
from heartbeat_ops.config import StackConfig
from heartbeat_ops.programs import venv_bin
from tests.support import kafka_login
from tests.support.sockets import free_port
from tests.support.stream_job import wait_for

TOKEN = "test-notifier-token"


class NotifierProcess:
    def __init__(self, stack: StackConfig, topic: str, group: str, log_path: Path, *,
                 topic_exists: bool = True, **overrides: str) -> None:  # fmt: skip
        """`topic_exists=False`: the rights on `topic` are granted by name, not waited for."""
        self.port = free_port()
        kafka_login.grant_notifier(stack.kafka_bootstrap_servers, topic, group, topic_exists)
        self.env = {
            **os.environ,
            **stack.environment(),
            "KAFKA_ALERTS_TOPIC": topic,
            "HEARTBEAT_NOTIFIER_GROUP": group,
            "HEARTBEAT_NOTIFIER_LISTEN": f"127.0.0.1:{self.port}",
            "HEARTBEAT_NOTIFIER_TOKEN": TOKEN,
            "HEARTBEAT_NOTIFY_BACKOFF_SECONDS": "0.2",
            "HEARTBEAT_NOTIFY_BACKOFF_MAX_SECONDS": "2",
            "HEARTBEAT_NOTIFY_TIMEOUT_SECONDS": "5",
            "HEARTBEAT_SMTP_TLS": "none",
            "HEARTBEAT_DASHBOARD_URL": "http://dashboards.example:8088",
            **overrides,
        }
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def metric(self, name: str) -> float | None:
        """A value from /metrics (the first line of that name)."""
        with urllib.request.urlopen(f"{self.base_url}/metrics", timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.split(" ")[0] == name:
                    return float(line.rsplit(" ", 1)[1])
        return None

    def launch(self) -> NotifierProcess:
        """Start the process and return at once, healthy or not."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [venv_bin("heartbeat-notifier")],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        return self

    def start(self) -> NotifierProcess:
        """Start the process and wait until it serves /health."""
        self.launch()
        wait_for(lambda: self.healthy() or self.process.poll() is not None, 60, "notifier /health")
        assert self.process.poll() is None, f"notifier exited; see {self.log_path}"
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup, no last commit."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> int | None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                return self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode if self.process else None


def insert_webhook_channel(cur: cursor, url: str) -> int:
    """A json webhook channel to `url` with a fresh secret, written as the superuser (rows a
    test writes directly, with no `heartbeat-ops notify`); its id."""
    cur.execute(
        "INSERT INTO notify_channels (transport, target, format, secret)"
        " VALUES ('webhook', %s, 'json', %s) RETURNING id",
        (url, new_secret()),
    )
    return cur.fetchone()[0]


def only_webhook_channel(cur: cursor, url: str) -> None:
    """Make a webhook to `url` the database's only channel (the benchmarks' own databases):
    every other channel is removed, so each event is delivered exactly there."""
    cur.execute("UPDATE notify_channels SET removed_at = now() WHERE removed_at IS NULL")
    insert_webhook_channel(cur, url)
