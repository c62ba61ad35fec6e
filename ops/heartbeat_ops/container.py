"""docker compose's side of heartbeat-ops: one program per container, in the foreground.

`make up` hands PostgreSQL and Kafka to supervisord; a container runs one of them instead, so
`heartbeat-ops serve postgres|kafka` prepares the data folder exactly as `up` does
(nodes.prepare_*) and execs the same command, plus what a container needs: PostgreSQL listens
on the compose network with password auth, and neither server runs as root.
`heartbeat-ops ready NAME|URL` is the services' healthcheck.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.request

from . import health, nodes, replica
from .config import StackConfig, ensure_secrets, load, var_dir
from .database import ConfigurationError
from .programs import (
    kafka_program,
    postgres_os_user,
    postgres_program,
    postgres_replica_program,
)

# Other containers reach PostgreSQL over the compose network's subnet only, with a password.
HBA_RULE = "host all all samenet scram-sha-256"


def _exec_as(user: str | None, command: list[str]) -> None:
    if user and os.geteuid() == 0:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *command]
    print(f"exec {command[0]} ...", flush=True)
    os.execvp(command[0], command)


def serve_postgres() -> None:
    # The first service up makes the secrets: initdb needs POSTGRES_PASSWORD. Never overwrites.
    ensure_secrets()
    config = load()
    # Replication (the postgres-replica service) from the compose network only, its role only.
    if nodes.prepare_postgres(config, var_dir(), replication_sources=("samenet",)):
        print("initialised the PostgreSQL cluster", flush=True)
    hba = var_dir() / "data" / "postgres" / "pg_hba.conf"
    if HBA_RULE not in hba.read_text().splitlines():
        with hba.open("a") as handle:
            handle.write(f"# heartbeat-ops serve: the compose network\n{HBA_RULE}\n")
    program = postgres_program(config, var_dir())
    # A later -c wins: listen on the container's interfaces, not only on its loopback.
    _exec_as(postgres_os_user(), [*program.command, "-c", "listen_addresses=*"])


def serve_postgres_replica() -> None:
    """The read replica: copied from the primary once (the init service made its role and
    slot), then a hot standby on the compose network; the primary's pg_hba, copied with it,
    lets the other containers in with a password as on the primary."""
    config = load()
    if replica.base_backup(config, var_dir()):
        print("copied the primary with pg_basebackup", flush=True)
    program = postgres_replica_program(config, var_dir())
    # Every interface of the container; no unix socket (the state volume is read-only here).
    extra = ["-c", "listen_addresses=*", "-c", "unix_socket_directories="]
    _exec_as(postgres_os_user(), [*program.command, *extra])


# The device listener's port inside the container of Kafka node 1 (node N: + N - 1); compose
# publishes node N's on the host address HEARTBEAT_DEVICE_LISTENER names, its port + N - 1.
CONTAINER_DEVICE_PORT = 9094


def container_device_config(config: StackConfig) -> StackConfig:
    """In a container, HEARTBEAT_DEVICE_LISTENER is the host's address compose publishes: the
    broker binds every interface of the container and advertises that address (or
    HEARTBEAT_DEVICE_ADVERTISED) to devices; node N both at the port + N - 1."""
    if not config.device_listener:
        return config
    advertised = config.device_advertised or config.device_listener
    host = advertised.rpartition(":")[0]
    if host in ("0.0.0.0", "::", "[::]"):
        raise ConfigurationError(
            f"HEARTBEAT_DEVICE_LISTENER={config.device_listener} publishes the device listener "
            "on every host interface: set HEARTBEAT_DEVICE_ADVERTISED=NAME:PORT to the name "
            "devices dial (a container cannot know the host's name)"
        )
    return config.model_copy(
        update={
            "device_listener": f"0.0.0.0:{CONTAINER_DEVICE_PORT}",
            "device_advertised": advertised,
        }
    )


def serve_kafka() -> None:
    config = container_device_config(load())
    if nodes.prepare_kafka(config, var_dir()):
        print("formatted the Kafka storage", flush=True)
    _exec_as(None, kafka_program(config, var_dir()).command)


def cmd_serve(args: argparse.Namespace) -> int:
    programs = {
        "postgres": serve_postgres,
        "postgres-replica": serve_postgres_replica,
        "kafka": serve_kafka,
    }
    programs[args.program]()
    return 1  # only reached if exec failed


def _http_ready(url: str, status: str | None) -> bool:
    """200, and if `status` is given, a JSON body whose "status" is that (Spark's master)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read()
            if response.status != 200:
                return False
    except OSError:
        return False
    return status is None or json.loads(body).get("status") == status


def cmd_ready(args: argparse.Namespace) -> int:
    if args.target == "kafka":
        ok = health.kafka_ready(load())
    elif args.target == "kafka-node":
        ok = health.kafka_node_ready(load())
    elif args.target == "postgres":
        ok = health.postgres_ready(load())
    elif args.target == "postgres-replica":
        ok = replica.replica_ready(load())
    else:
        ok = _http_ready(args.target, args.status)
    print("ready" if ok else "not ready")
    return 0 if ok else 1


def add_commands(sub) -> None:
    serve = sub.add_parser(
        "serve", help="(containers) prepare and run postgres, its read replica or kafka"
    )
    serve.add_argument("program", choices=["postgres", "postgres-replica", "kafka"])
    serve.set_defaults(func=cmd_serve)
    ready = sub.add_parser(
        "ready",
        help="(containers) healthcheck: postgres, postgres-replica, kafka, kafka-node or a URL",
    )
    ready.add_argument(
        "target",
        help="postgres, postgres-replica, kafka (the cluster), kafka-node (this node, "
        "HEARTBEAT_KAFKA_NODE_ID), or an http:// URL that must answer 200",
    )
    ready.add_argument("--status", help="the URL's JSON must have this `status` (e.g. ALIVE)")
    ready.set_defaults(func=cmd_ready)
