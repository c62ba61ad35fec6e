"""A read replica of the tests' world, made and run by the product's own code (heartbeat_ops.
replica and programs, as `make up` with HEARTBEAT_PG_REPLICA does) on a free port; stopped and
its slot dropped afterwards, so the world's primary keeps no WAL for it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg2

from heartbeat_ops import replica
from heartbeat_ops.config import StackConfig
from heartbeat_ops.programs import postgres_replica_program
from tests.support.sockets import free_port
from tests.support.stream_job import wait_for
from tests.support.world import World


@dataclass
class Replica:
    world: World
    config: StackConfig  # the world's, with HEARTBEAT_PG_REPLICA set
    process: subprocess.Popen[bytes] | None = field(default=None)

    def start(self) -> None:
        program = postgres_replica_program(self.config, self.world.root)
        self.process = self.world._spawn(program)  # the world's logs and pid files
        # _wait_ready passes the world's config (no replica in it): check the replica's.
        ready = lambda _world_config: replica.replica_ready(self.config)  # noqa: E731
        self.world._wait_ready(program.name, self.process, ready)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # fast shutdown, as supervisord
            self.process.wait(timeout=60)

    def connect(self, database: str | None = None) -> psycopg2.extensions.connection:
        """The superuser on the replica (read-only there, whatever the role)."""
        c = self.config
        return psycopg2.connect(
            c.dsn(user=c.pg_superuser, password=c.pg_superuser_password, database=database,
                  replica=True)
        )  # fmt: skip

    def caught_up(self, timeout: float = 60.0) -> float:
        """Wait until the replica has replayed everything the primary wrote so far; seconds."""
        with psycopg2.connect(self.config.admin_dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_current_wal_lsn()::text")
            (target,) = cur.fetchone()
        conn.close()
        replica_conn = self.connect()
        replica_conn.autocommit = True
        try:

            def replayed() -> bool:
                with replica_conn.cursor() as cur:
                    cur.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))
                    return bool(cur.fetchone()[0])

            began = time.monotonic()
            wait_for(replayed, timeout, "the replica to replay the primary's WAL", 0.05)
            return time.monotonic() - began
        finally:
            replica_conn.close()


@contextmanager
def replica_of(world: World) -> Iterator[Replica]:
    """A hot standby of the world's PostgreSQL, streaming through the slot, for the block."""
    port = free_port()
    config = world.config.model_copy(update={"pg_replica": f"localhost:{port}"})
    replica.provision(config)  # the replication role and slot, on the world's primary
    replica.base_backup(config, world.root)
    running = Replica(world, config)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        replica.provision(world.config)  # replica off: the slot is dropped
        replica.forget(world.root)
