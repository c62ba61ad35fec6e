"""The stack's view of the settings (heartbeat_contract.settings), plus the generated secrets.

Precedence: environment variables, then the secrets generated on first run, then defaults. The
stack's location, roles and passwords are read only from HEARTBEAT_* / POSTGRES_* / SUPERSET_*
names, never from libpq's PG* variables: a psql user's shell (PGDATABASE=postgres, PGUSER=...)
must not decide which database the stack migrates, which role it creates or which password it
sets (README, "Configuration").
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
import uuid
from pathlib import Path

from heartbeat_contract.settings import ROOT as ROOT  # where the checkout is, for ops and tests
from heartbeat_contract.settings import Settings
from heartbeat_contract.settings import read_env_file as read_env_file  # ops and tests use it

# Secrets generated once on first run and kept in var/secrets.env (mode 0600, outside git).
GENERATED_SECRETS = (
    "POSTGRES_PASSWORD",
    "HEARTBEAT_APP_PASSWORD",
    "HEARTBEAT_READER_PASSWORD",
    "SUPERSET_DB_PASSWORD",
    "SUPERSET_SECRET_KEY",
    "SUPERSET_ADMIN_PASSWORD",
    "HEARTBEAT_NOTIFIER_PASSWORD",
    "HEARTBEAT_NOTIFIER_TOKEN",
    "HEARTBEAT_KAFKA_ADMIN_PASSWORD",
    "HEARTBEAT_KAFKA_JOB_PASSWORD",
    "HEARTBEAT_KAFKA_PRODUCER_PASSWORD",
    "HEARTBEAT_KAFKA_NOTIFIER_PASSWORD",
    "HEARTBEAT_REPLICATION_PASSWORD",
)


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka makes them: a random UUID in URL-safe base64, never starting
    with "-" (the format tool would read it as an option; Kafka's Uuid.randomUuid skips those)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


# Values generated once beside the secrets that are not secrets: every node of a Kafka cluster
# formats its storage with the same cluster id (in compose the `state` volume carries it).
GENERATED_VALUES = {"HEARTBEAT_KAFKA_CLUSTER_ID": new_cluster_id}


# The Kafka principals' names and passwords (heartbeat_contract.kafka_security), field -> variable.
KAFKA_PRINCIPAL_FIELDS = {
    f"kafka_{principal}_{part}": f"HEARTBEAT_KAFKA_{principal.upper()}_{part.upper()}"
    for principal in ("admin", "job", "producer", "notifier")
    for part in ("user", "password")
}


def var_dir() -> Path:
    """Where installs, data, logs and secrets live (ignored by git)."""
    return Settings().var_dir


def secrets_file() -> Path:
    return var_dir() / "secrets.env"


# Keys older secrets files used; carried over once so an existing stack keeps its passwords.
LEGACY_SECRET_NAMES = {"PGPASSWORD": "HEARTBEAT_APP_PASSWORD"}

# libpq reads PG* variables from the environment (where, who, with which password, options,
# service files). The stack reads none of them: every one is dropped from heartbeat-ops and the
# processes it starts, so an ambient PGDATABASE=postgres or PGUSER=postgres cannot redirect it.
# PG_BIN_DIR is ours (where PostgreSQL's programs are), not libpq's.
HEARTBEAT_PG_VARIABLES = ("PG_BIN_DIR",)


def ambient_libpq_variables(environ: dict[str, str] | None = None) -> list[str]:
    """Names of libpq variables in `environ` that the stack ignores and scrubs."""
    env = os.environ if environ is None else environ
    return sorted(
        name for name in env if name.startswith("PG") and name not in HEARTBEAT_PG_VARIABLES
    )


def scrub_ambient_libpq() -> list[str]:
    """Drop every ambient libpq variable from this process (and so from its children)."""
    names = ambient_libpq_variables()
    for name in names:
        os.environ.pop(name, None)
    return names


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (0600), from its first byte: secrets, and the
    Kafka properties that carry the admin's password. An existing file is made 0600 too."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def ensure_secrets() -> dict[str, str]:
    """Create any missing secret in var/secrets.env; never overwrite an existing one."""
    path = secrets_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = read_env_file(path)
    renamed = False
    for old, new in LEGACY_SECRET_NAMES.items():
        if old in existing:
            existing.setdefault(new, existing[old])
            del existing[old]
            renamed = True
    missing = [name for name in GENERATED_SECRETS if name not in existing]
    missing_values = [name for name in GENERATED_VALUES if name not in existing]
    if missing or missing_values or renamed:
        existing.update({name: secrets.token_urlsafe(32) for name in missing})
        existing.update({name: GENERATED_VALUES[name]() for name in missing_values})
        lines = [f"{key}={value}\n" for key, value in sorted(existing.items())]
        write_private(
            path, "# Generated by heartbeat-ops on first run. Keep out of git.\n" + "".join(lines)
        )
    os.chmod(path, 0o600)
    return existing


def source_of(name: str, stored: dict[str, str] | None = None) -> str:
    """Where a setting's value comes from, for error messages that say what to change."""
    s = read_env_file(secrets_file()) if stored is None else stored
    if os.environ.get(name):
        return f"the environment variable {name}"
    if s.get(name):
        return f"{name} in {secrets_file()}"
    return f"the default of {name}"


class StackConfig(Settings):
    """Every knob of the native stack, resolved once."""

    @property
    def kafka_nodes(self) -> list[tuple[str, int]]:
        """(host, port) of every Kafka node: node N is the N-th address of the bootstrap list."""
        nodes = []
        for address in self.kafka_bootstrap_servers.split(","):
            host, _, port = address.strip().rpartition(":")
            nodes.append((host, int(port)))
        return nodes

    @property
    def kafka_host(self) -> str:
        """This node's host (HEARTBEAT_KAFKA_NODE_ID picks its address in the bootstrap list)."""
        return self._own_node()[0]

    @property
    def kafka_port(self) -> int:
        return self._own_node()[1]

    def _own_node(self) -> tuple[str, int]:
        nodes = self.kafka_nodes
        if self.kafka_node_id > len(nodes):
            raise ValueError(
                f"HEARTBEAT_KAFKA_NODE_ID={self.kafka_node_id} but KAFKA_BOOTSTRAP_SERVERS names "
                f"{len(nodes)} node(s): node N is the N-th address"
            )
        return nodes[self.kafka_node_id - 1]

    @property
    def kafka_min_insync_replicas(self) -> int:
        """Replicas a write waits for (acks=all): two when there are copies to spare, so one
        node may be lost without losing an acknowledged reading or stopping writes."""
        return min(2, self.kafka_replication_factor)

    @property
    def device_address(self) -> str:
        """HOST:PORT devices dial for this node; "" while the listener is off."""
        return self.device_address_of(self.kafka_node_id)

    @property
    def device_addresses(self) -> str:
        """Every node's device address, comma-separated: the bootstrap list devices get."""
        if not self.device_listener:
            return ""
        return ",".join(self.device_address_of(n) for n in range(1, len(self.kafka_nodes) + 1))

    def device_address_of(self, node_id: int) -> str:
        """HOST:PORT devices dial for node `node_id`: HEARTBEAT_DEVICE_ADVERTISED, else the
        listener's address with a wildcard host replaced by this machine's name; node N's port
        is that port + N - 1 (one host may publish every node's). "" while the listener is off."""
        if not self.device_listener:
            return ""
        host, _, port = (self.device_advertised or self.device_listener).rpartition(":")
        if not self.device_advertised and host in ("0.0.0.0", "::", "[::]"):
            host = socket.getfqdn()
        return f"{host}:{int(port) + node_id - 1}"

    @property
    def device_bind_address(self) -> str:
        """HOST:PORT this node's device listener binds: the listener's port + node id - 1."""
        host, _, port = self.device_listener.rpartition(":")
        return f"{host}:{int(port) + self.kafka_node_id - 1}"

    @property
    def replica_host(self) -> str:
        """Where the read replica listens ("" while HEARTBEAT_PG_REPLICA is off)."""
        return self.pg_replica.rpartition(":")[0]

    @property
    def replica_port(self) -> int:
        return int(self.pg_replica.rpartition(":")[2]) if self.pg_replica else 0

    def dsn(
        self, *, user: str, password: str, database: str | None = None, replica: bool = False
    ) -> str:
        """A libpq keyword DSN; psycopg2 quotes nothing for us, so values are kept token-safe.
        `replica`: the read replica's address instead of the primary's."""
        host, port = (self.replica_host, self.replica_port) if replica else (
            self.pg_host, self.pg_port)  # fmt: skip
        return (
            f"host={host} port={port} dbname={database or self.pg_database} "
            f"user={user} password={password} connect_timeout=5"
        )

    @property
    def superuser_dsn(self) -> str:
        return self.dsn(
            user=self.pg_superuser, password=self.pg_superuser_password, database="postgres"
        )

    @property
    def admin_dsn(self) -> str:
        """The superuser on the stack's database: migrations, tests' checks, the loader."""
        return self.dsn(user=self.pg_superuser, password=self.pg_superuser_password)

    @property
    def app_dsn(self) -> str:
        return self.dsn(user=self.pg_user, password=self.pg_password)

    @property
    def notifier_dsn(self) -> str:
        return self.dsn(user=self.notifier_user, password=self.notifier_password)

    @property
    def reader_dsn(self) -> str:
        return self.dsn(user=self.reader_user, password=self.reader_password)

    def environment(self) -> dict[str, str]:
        """The variables every supervised program sees (shared names with docker compose)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "KAFKA_TOPIC": self.kafka_topic,
            "KAFKA_ALERTS_TOPIC": self.kafka_alerts_topic,
            "HEARTBEAT_PG_HOST": self.pg_host,
            "HEARTBEAT_PG_PORT": str(self.pg_port),
            "HEARTBEAT_PG_DATABASE": self.pg_database,
            "HEARTBEAT_APP_USER": self.pg_user,
            "HEARTBEAT_APP_PASSWORD": self.pg_password,
            "HEARTBEAT_PG_REPLICA": self.pg_replica,
            "HEARTBEAT_READER_USER": self.reader_user,
            "HEARTBEAT_READER_PASSWORD": self.reader_password,
            "HEARTBEAT_NOTIFIER_USER": self.notifier_user,
            "HEARTBEAT_NOTIFIER_PASSWORD": self.notifier_password,
            "HEARTBEAT_NOTIFIER_TOKEN": self.notifier_token,
            **{alias: str(getattr(self, field)) for field, alias in KAFKA_PRINCIPAL_FIELDS.items()},
            "SUPERSET_DB_USER": self.superset_db_user,
            "SUPERSET_DB_PASSWORD": self.superset_db_password,
            "SUPERSET_PORT": str(self.superset_port),
            "HEARTBEAT_VAR_DIR": str(self.var_dir),
        }


def load(stored: dict[str, str] | None = None) -> StackConfig:
    """Resolve the configuration; `stored` defaults to the secrets file's content."""
    s = read_env_file(secrets_file()) if stored is None else stored
    for old, new in LEGACY_SECRET_NAMES.items():  # a secrets file not yet migrated
        if old in s and new not in s:
            s = {**s, new: s[old]}
    s = {name: value for name, value in s.items() if name not in LEGACY_SECRET_NAMES}
    return StackConfig.resolve(s)
