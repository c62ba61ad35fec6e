"""The suite's own world: a PostgreSQL cluster and a Kafka broker the tests start on free ports.

Their data lives under var/test-world/, wiped at every run start (a fresh initdb and a fresh
storage format take seconds); their configuration comes from the product's own code
(heartbeat_ops.nodes and programs, given the world's directory and ports), their passwords are
generated for the run, and database.bootstrap provisions the same roles and schema as `make up`.
No test, destructive or not, can reach the live stack: the fault tests stop and SIGKILL these
processes, whose handles the World keeps, and restart them on the same ports and data.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from heartbeat_ops import database, health, principals, topics
from heartbeat_ops.config import GENERATED_SECRETS, StackConfig, var_dir
from heartbeat_ops.nodes import prepare_kafka, prepare_postgres
from heartbeat_ops.programs import Program, kafka_program, postgres_program
from tests.support.sockets import free_ports
from tests.support.stream_job import wait_for

TEST_DATABASE = "heartbeat_test"
# Customer ids of test data start with this; the live producer's are C0001, C0002, ...
CUSTOMER_PREFIX = "T-"
READINGS_TOPIC = "test-heart-rate-readings"
ALERTS_TOPIC = "test-heart-rate-alerts"

# The settings a child process needs to find the world instead of the live stack.
_LOCATION_AND_CREDENTIALS = (
    "pg_host", "pg_port", "pg_database", "pg_superuser", "pg_superuser_password",
    "pg_user", "pg_password", "reader_user", "reader_password",
    "superset_db_user", "superset_db_password",
    "kafka_bootstrap_servers", "kafka_controller_port", "kafka_topic", "kafka_alerts_topic",
    "kafka_admin_user", "kafka_admin_password", "kafka_job_user", "kafka_job_password",
    "kafka_producer_user", "kafka_producer_password", "kafka_notifier_user",
    "kafka_notifier_password",
)  # fmt: skip


def world_dir() -> Path:
    """var/test-world, or var/test-world-gwN for pytest-xdist's worker N: each worker of a
    parallel run has a world of its own (its own cluster, broker, ports and secrets)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return var_dir() / (f"test-world-{worker}" if worker else "test-world")


def _alias(field: str) -> str:
    return StackConfig.model_fields[field].alias or field


def world_config(secret_values: dict[str, str]) -> StackConfig:
    """The settings of a world on three free ports, with the run's own generated secrets.

    Role names and tuning come from the settings as `make up` resolves them; where the world is
    and every password are the world's own (an environment variable cannot redirect them).
    """
    pg_port, kafka_port, controller_port = free_ports(3)
    base = StackConfig.resolve({})
    by_field = {
        name: secret_values[_alias(name)]
        for name in StackConfig.model_fields
        if _alias(name) in secret_values
    }
    return base.model_copy(
        update={
            **by_field,
            "pg_host": "localhost",
            "pg_port": pg_port,
            "pg_database": TEST_DATABASE,
            "pg_replica": "",  # none unless a test makes one (tests/support/replica.py)
            "kafka_bootstrap_servers": f"localhost:{kafka_port}",
            "kafka_controller_port": controller_port,
            "kafka_topic": READINGS_TOPIC,
            "kafka_alerts_topic": ALERTS_TOPIC,
        }
    )


def _alive(pid: int) -> bool:
    """Running (a zombie whose parent died unreaped counts as gone: it holds no port or file)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def clean_stale(root: Path) -> list[int]:
    """SIGKILL what a crashed earlier run left running from `root` (pids it recorded, checked
    against their command line so a recycled pid is never touched); returns the pids killed."""
    killed = []
    for pid_file in root.glob("run/*.pid"):
        try:
            pid = int(pid_file.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (ValueError, IndexError, FileNotFoundError, ProcessLookupError):
            continue
        if str(root) in cmdline:
            os.killpg(pid, signal.SIGKILL)
            killed.append(pid)
    for pid in killed:
        wait_for(lambda p=pid: not _alive(p), 30, f"stale world process {pid} to exit", poll=0.1)
    return killed


class World:
    """The world's settings, its two processes and the means to stop, kill and restart them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.secrets = {name: secrets.token_urlsafe(32) for name in GENERATED_SECRETS}
        self.config = world_config(self.secrets)
        self.postgres: subprocess.Popen[bytes] | None = None
        self.kafka: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, root: Path | None = None) -> World:
        """A fresh world: stale processes killed, the folder wiped, both nodes prepared."""
        root = root or world_dir()
        clean_stale(root)
        shutil.rmtree(root, ignore_errors=True)
        (root / "run").mkdir(parents=True)
        (root / "log").mkdir()
        world = cls(root)
        with ThreadPoolExecutor(2) as pool:  # initdb and the JVM's storage format side by side
            done = [
                pool.submit(prepare, world.config, root)
                for prepare in (prepare_postgres, prepare_kafka)
            ]
            for future in done:
                future.result()
        return world

    def environment(self) -> dict[str, str]:
        """The variables that point a child process (or Settings()) at the world."""
        env = {_alias(f): str(getattr(self.config, f)) for f in _LOCATION_AND_CREDENTIALS}
        return {**self.config.environment(), **env, **self.secrets}

    # --- the processes ------------------------------------------------------------------------

    def _spawn(self, program: Program) -> subprocess.Popen[bytes]:
        log = (self.root / "log" / f"{program.name}.log").open("ab")
        process = subprocess.Popen(
            program.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=program.user,
            group=program.user,
            extra_groups=[] if program.user else None,
            start_new_session=True,  # its own process group, as supervisord's stopasgroup
            cwd=self.root,
        )
        log.close()
        (self.root / "run" / f"{program.name}.pid").write_text(f"{process.pid}\n")
        return process

    def _wait_ready(self, name: str, process: subprocess.Popen[bytes], ready) -> None:
        def up() -> bool:
            if process.poll() is not None:
                log = (self.root / "log" / f"{name}.log").read_text(errors="replace")
                raise AssertionError(f"the world's {name} exited {process.returncode}:\n{log}")
            return ready(self.config)

        wait_for(up, 120, f"the world's {name}", poll=0.2)

    def start_postgres(self, wait: bool = True) -> None:
        self.postgres = self._spawn(postgres_program(self.config, self.root))
        if wait:
            self._wait_ready("postgres", self.postgres, health.postgres_ready)

    def stop_postgres(self, timeout: float = 60.0) -> None:
        """A fast shutdown (SIGINT, as supervisord stops it): open transactions roll back."""
        assert self.postgres is not None
        self.postgres.send_signal(signal.SIGINT)
        self.postgres.wait(timeout=timeout)

    def crash_postgres(self, timeout: float = 60.0) -> None:
        """An immediate shutdown (SIGQUIT), as a crash: no shutdown checkpoint, so the next start
        runs crash recovery, which empties every UNLOGGED table (the stage among them)."""
        assert self.postgres is not None
        self.postgres.send_signal(signal.SIGQUIT)
        self.postgres.wait(timeout=timeout)

    def start_kafka(self, wait: bool = True) -> None:
        self.kafka = self._spawn(kafka_program(self.config, self.root))
        if wait:
            self._wait_ready("kafka", self.kafka, health.kafka_ready)

    def kill_kafka(self) -> int:
        """SIGKILL the broker (a crash); returns its pid."""
        assert self.kafka is not None
        pid = self.kafka.pid
        os.killpg(pid, signal.SIGKILL)
        self.kafka.wait(timeout=30)
        return pid

    def provision(self) -> None:
        """What `make up` provisions: roles, databases, migrations, the topics, then the Kafka
        principals and their ACLs."""
        database.bootstrap(self.config)
        for topic in (self.config.kafka_topic, self.config.kafka_alerts_topic):
            topics.ensure_topic(self.config, topic, self.config.kafka_partitions)
        principals.ensure_principals(self.config)

    def start(self) -> float:
        """Both nodes up and provisioned; returns the seconds it took."""
        started = time.monotonic()
        self.start_kafka(wait=False)  # the slower starter (a JVM) first; both start side by side
        self.start_postgres()
        self._wait_ready("kafka", self.kafka, health.kafka_ready)
        self.provision()
        return time.monotonic() - started

    def stop(self) -> None:
        """Stop both processes (gracefully, then SIGKILL); the data stays until the next run."""
        for process, sig in ((self.kafka, signal.SIGTERM), (self.postgres, signal.SIGINT)):
            if process is None or process.poll() is not None:
                continue
            os.killpg(process.pid, sig)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
