"""The dashboards' read replica: a hot standby of the stack's PostgreSQL (README, "Read replica").

Streaming replication from the primary through a physical replication slot (the primary keeps
the WAL the replica has not replayed yet, so a replica that was away catches up instead of
needing a new copy), made once with `pg_basebackup -R`. It streams as its own role, which has
REPLICATION and LOGIN and nothing else, allowed by pg_hba only for replication connections from
where the replica runs (loopback natively, the compose network in containers).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg2
from psycopg2 import sql

from .config import StackConfig, source_of
from .programs import REPLICA_NAME, postgres_bin_dir, postgres_os_user

SLOT_NAME = REPLICA_NAME
# Natively the replica connects over loopback; these are the only sources pg_hba accepts then.
LOOPBACK_SOURCES = ("127.0.0.1/32", "::1/128")
HBA_MARK = "# heartbeat-ops: replication, the replica's role only"


class ReplicaError(RuntimeError):
    """The replica cannot be made or reached; the message says what to do."""


def data_dir(var: Path) -> Path:
    return var / "data" / "postgres-replica"


def hba_rules(user: str, sources: tuple[str, ...]) -> list[str]:
    return [f"host replication {user} {source} scram-sha-256" for source in sources]


def restrict_replication_hba(hba: Path, user: str, sources: tuple[str, ...]) -> bool:
    """Leave replication connections to `user` from `sources` only: initdb's rules for every
    role (`replication all`) are commented out, ours appended once. True if the file changed."""
    lines = hba.read_text().splitlines()
    wanted = hba_rules(user, sources)
    kept: list[str] = []
    changed = False
    for line in lines:
        fields = line.split()
        is_rule = len(fields) > 1 and not fields[0].startswith("#")
        if is_rule and fields[1] == "replication" and line.strip() not in wanted:
            kept.append(f"# {line}  (disabled by heartbeat-ops)")
            changed = True
            continue
        kept.append(line)
    missing = [rule for rule in wanted if rule not in (line.strip() for line in kept)]
    if missing:
        kept += [HBA_MARK, *missing]
        changed = True
    if changed:
        hba.write_text("\n".join(kept) + "\n")
    return changed


def ensure_replication_role(cur, config: StackConfig) -> None:
    """The replication role: LOGIN REPLICATION only. An existing one is kept as it is; a role of
    that name that is a superuser or cannot replicate stops the start."""
    name, password = config.replication_user, config.replication_password
    if not password:
        raise ReplicaError("HEARTBEAT_REPLICATION_PASSWORD is empty: run `heartbeat-ops secrets`")
    cur.execute("SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = %s", (name,))
    row = cur.fetchone()
    if row is None:
        cur.execute(
            sql.SQL(
                "CREATE ROLE {} LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %s"
            ).format(sql.Identifier(name)),
            (password,),
        )
        return
    superuser, replication = row
    if superuser or not replication:
        raise ReplicaError(
            f"role {name!r} ({source_of('HEARTBEAT_REPLICATION_USER')}) exists but is "
            f"{'a superuser' if superuser else 'not a replication role'}; the stack will not"
            " change it. Set HEARTBEAT_REPLICATION_USER to a role of the stack's own."
        )
    # Never altered (as database.py's roles): a wrong password shows as pg_basebackup's error.


def ensure_slot(cur) -> bool:
    """The physical slot the replica streams through, reserving WAL from now; True if new."""
    cur.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (SLOT_NAME,))
    if cur.fetchone():
        return False
    cur.execute("SELECT pg_create_physical_replication_slot(%s, true)", (SLOT_NAME,))
    return True


def drop_idle_slot(cur) -> bool:
    """With the replica turned off, the slot would keep WAL on the primary forever: drop it
    (only when nothing streams through it). True if dropped."""
    cur.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
        " WHERE slot_name = %s AND NOT active",
        (SLOT_NAME,),
    )
    return cur.rowcount > 0


def provision(config: StackConfig) -> str:
    """On the primary: the role and the slot when a replica is configured; else no slot."""
    conn = psycopg2.connect(config.superuser_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            if not config.pg_replica:
                return "slot dropped (replica off)" if drop_idle_slot(cur) else "replica off"
            ensure_replication_role(cur, config)
            return f"slot {SLOT_NAME} created" if ensure_slot(cur) else f"slot {SLOT_NAME} kept"
    finally:
        conn.close()


def reload_configuration(config: StackConfig) -> None:
    """A primary that was already running reads the pg_hba prepare_postgres just changed."""
    conn = psycopg2.connect(config.superuser_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_reload_conf()")
    finally:
        conn.close()


def _chown(path: Path, user: str | None) -> None:
    if user:
        shutil.chown(path, user, user)


def base_backup(config: StackConfig, var: Path) -> bool:
    """Copy the primary into the replica's data folder with `pg_basebackup -R` (which writes
    standby.signal and primary_conninfo), streaming through the slot. Done once; True if now."""
    data = data_dir(var)
    if (data / "PG_VERSION").exists():
        return False
    # Emptied, not removed: in a container the folder is a volume's mount point.
    if data.exists():
        for child in data.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o700)
    user = postgres_os_user()
    _chown(data, user)
    command = [
        str(postgres_bin_dir() / "pg_basebackup"),
        "--host", config.pg_host, "--port", str(config.pg_port),
        "--username", config.replication_user, "--no-password",
        "--pgdata", str(data), "--write-recovery-conf", "--wal-method=stream",
        f"--slot={SLOT_NAME}", "--checkpoint=fast", "--no-sync",
    ]  # fmt: skip
    if user:
        command = ["runuser", "-u", user, "--", *command]
    # The password through the environment of this one child (never on its command line);
    # pg_basebackup -R writes it into the replica's primary_conninfo (the folder is 0700).
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PG")},
        "PGPASSWORD": config.replication_password,
    }
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise ReplicaError(f"pg_basebackup failed: {result.stderr.strip()}")
    return True


def forget(var: Path) -> bool:
    """With the replica off its slot is dropped, so an old copy could never catch up again:
    delete it (turning the replica on makes a new one). True if there was one."""
    data = data_dir(var)
    if not data.exists():
        return False
    shutil.rmtree(data)
    return True


def replica_ready(config: StackConfig) -> bool:
    """Accepting connections, and in recovery (a standby, not a promoted copy)."""
    try:
        conn = psycopg2.connect(
            config.dsn(
                user=config.pg_superuser,
                password=config.pg_superuser_password,
                database="postgres",
                replica=True,
            )
        )
    except psycopg2.OperationalError:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery()")
            return bool(cur.fetchone()[0])
    finally:
        conn.close()
