"""A Kafka broker of the tests' own with the device listener on (HEARTBEAT_DEVICE_LISTENER),
configured, TLS material and all, by the product's code (heartbeat_ops.nodes and programs).

The session's world broker stays as `make up` runs it by default (no listener, no authorizer);
this one runs beside it on free ports, under the world's folder, and uses the world's PostgreSQL,
so a job can land what devices write. Its pid file sits in the world's run/ folder, so a crashed
run's broker is killed by the next session's World.create (clean_stale).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from heartbeat_ops import health, principals, topics
from heartbeat_ops.config import StackConfig
from heartbeat_ops.nodes import prepare_kafka
from heartbeat_ops.programs import kafka_program
from tests.support.sockets import free_ports
from tests.support.stream_job import wait_for
from tests.support.world import World

READINGS_TOPIC = "device-heart-rate-readings"
ALERTS_TOPIC = "device-heart-rate-alerts"
INVALID_CREDENTIALS = "invalid credentials with SASL mechanism SCRAM-SHA-512"
TLS_HANDSHAKE_FAILED = "SSL handshake failed"


class DeviceBroker:
    """The broker's settings, its process and its log."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.root = world.root / "device-broker"
        kafka_port, controller_port, device_port = free_ports(3)
        self.config: StackConfig = world.config.model_copy(
            update={
                "var_dir": self.root,  # where its TLS material is, as var/ is for `make up`
                "kafka_bootstrap_servers": f"localhost:{kafka_port}",
                "kafka_controller_port": controller_port,
                "kafka_topic": READINGS_TOPIC,
                "kafka_alerts_topic": ALERTS_TOPIC,
                "device_listener": f"127.0.0.1:{device_port}",
            }
        )
        self.log = self.root / "kafka.log"
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        """What `heartbeat-ops devices ...` needs to manage this broker's devices."""
        return {
            "HEARTBEAT_VAR_DIR": str(self.root),
            "KAFKA_BOOTSTRAP_SERVERS": self.config.kafka_bootstrap_servers,
            "KAFKA_CONTROLLER_PORT": str(self.config.kafka_controller_port),
            "KAFKA_TOPIC": READINGS_TOPIC,
            "KAFKA_ALERTS_TOPIC": ALERTS_TOPIC,
            "HEARTBEAT_DEVICE_LISTENER": self.config.device_listener,
        }

    def start(self) -> None:
        """Prepare (certificate, properties, storage format), start, wait, create both topics."""
        self.root.mkdir(parents=True, exist_ok=True)
        prepare_kafka(self.config, self.root)
        program = kafka_program(self.config, self.root)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                program.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        (self.world.root / "run" / "device-kafka.pid").write_text(f"{self.process.pid}\n")

        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"the device broker exited:\n{self.log.read_text()[-4000:]}")
            return health.kafka_ready(self.config)

        wait_for(ready, 120, "the device broker", poll=0.2)
        for topic in (READINGS_TOPIC, ALERTS_TOPIC):
            topics.ensure_topic(self.config, topic, 3)
        principals.ensure_principals(self.config)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def refusals(self, reason: str, peer: str = "127.0.0.1") -> int:
        """How many connections the broker refused for `reason` ("Failed authentication")."""
        pattern = re.compile(f"Failed authentication with /{re.escape(peer)} .*{re.escape(reason)}")
        lines = self.log.read_text(errors="replace").splitlines()
        return sum(1 for line in lines if pattern.search(line))


def tls_files(root: Path) -> dict[str, int]:
    """name -> permission bits of each file in the broker's TLS folder."""
    return {p.name: p.stat().st_mode & 0o777 for p in sorted((root / "tls").iterdir())}
