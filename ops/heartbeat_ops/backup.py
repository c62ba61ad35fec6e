"""`heartbeat-ops backup DIR` / `restore DIR`: the product database, Superset's metadata and the
generated secrets, with a manifest; restored into a fresh stack.

The product database is dumped from one exported snapshot, and the manifest's row counts are
read in that same snapshot, so they describe exactly what the dump holds while the job keeps
writing. The sink's own position in Kafka is part of that snapshot (sink_read_positions, written
in each batch's transaction), which is what lets a restored stack resume without reading a
message twice or losing one (README, "Backups and restore").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
from psycopg2 import sql

from . import database, supervisor
from .config import (
    GENERATED_SECRETS,
    ROOT,
    StackConfig,
    load,
    read_env_file,
    secrets_file,
    write_private,
)
from .programs import postgres_bin_dir

PRODUCT_DUMP = "heartbeat.dump"
SUPERSET_DUMP = "superset.dump"
SECRETS = "secrets.env"
MANIFEST = "manifest.json"
# Tables whose rows a freshly provisioned stack already has: they do not make it "non-empty".
PROVISIONED_TABLES = ("schema_migrations", "alert_defaults")
# What must be stopped while a restore replaces the databases under them.
WRITERS = ("stream-job", "producer", "notifier", "superset")

_TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname
"""
_READ_POSITIONS = """
SELECT sink_id, kafka_topic, kafka_partition, next_offset FROM sink_read_positions
ORDER BY sink_id, kafka_topic, kafka_partition
"""


class BackupError(RuntimeError):
    """A backup or restore that must not go ahead; the message says why and what to do."""


def _pg_env(config: StackConfig) -> dict[str, str]:
    """pg_dump/pg_restore's environment: the superuser's password, never on a command line."""
    return {**os.environ, "PGPASSWORD": config.pg_superuser_password}


def _pg_tool(name: str) -> str:
    return str(postgres_bin_dir() / name)


def _location(config: StackConfig, database_name: str) -> list[str]:
    return ["-h", config.pg_host, "-p", str(config.pg_port), "-U", config.pg_superuser,
            "-d", database_name]  # fmt: skip


def _run(command: list[str], config: StackConfig) -> None:
    result = subprocess.run(command, env=_pg_env(config), capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed: {result.stderr.strip()[-2000:]}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def row_counts(cur) -> dict[str, int]:
    """Rows of every table of the public schema (a partitioned table counts its partitions)."""
    cur.execute(_TABLES)
    tables = [name for (name,) in cur.fetchall()]
    counts = {}
    for table in tables:
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        counts[table] = cur.fetchone()[0]
    return counts


def _migrations(cur) -> list[str]:
    cur.execute("SELECT version, name FROM schema_migrations ORDER BY version")
    return [f"{version:03d}_{name}" for version, name in cur.fetchall()]


def _read_positions(cur) -> list[dict[str, object]]:
    cur.execute(_READ_POSITIONS)
    return [
        {"sink_id": s, "topic": t, "partition": p, "next_offset": o}
        for s, t, p, o in cur.fetchall()
    ]


def _dump_product(config: StackConfig, target: Path) -> dict[str, object]:
    """pg_dump of the product database and the manifest's figures, from one snapshot."""
    conn = psycopg2.connect(config.admin_dsn)
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_export_snapshot()")
            (snapshot,) = cur.fetchone()
            _run([_pg_tool("pg_dump"), *_location(config, config.pg_database), "-Fc",
                  f"--snapshot={snapshot}", "-f", str(target)], config)  # fmt: skip
            figures = {
                "row_counts": row_counts(cur),
                "migrations": _migrations(cur),
                "read_positions": _read_positions(cur),
            }
        conn.rollback()
    finally:
        conn.close()
    return figures


def _superset_counts(config: StackConfig) -> dict[str, int]:
    conn = psycopg2.connect(
        config.dsn(user=config.pg_superuser, password=config.pg_superuser_password,
                   database=config.superset_db_name)
    )  # fmt: skip
    try:
        with conn.cursor() as cur:
            return row_counts(cur)
    finally:
        conn.close()


def _secrets(config: StackConfig) -> dict[str, str]:
    """The generated secrets as this stack resolves them (environment, then var/secrets.env)."""
    stored = read_env_file(secrets_file())
    values = {name: os.environ.get(name) or stored.get(name, "") for name in GENERATED_SECRETS}
    return {name: value for name, value in values.items() if value}


def backup(config: StackConfig, directory: Path) -> dict[str, object]:
    """Write the dumps, the secrets (0600) and the manifest into a new or empty `directory`."""
    if directory.exists() and any(directory.iterdir()):
        raise BackupError(f"{directory} is not empty; give a new directory for each backup")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    try:
        return _write_backup(config, directory)
    except BaseException:
        for name in (PRODUCT_DUMP, SUPERSET_DUMP, SECRETS, MANIFEST):  # a half backup is none
            (directory / name).unlink(missing_ok=True)
        raise


def _write_backup(config: StackConfig, directory: Path) -> dict[str, object]:
    """The dumps, secrets and manifest; the manifest last, so its presence means complete."""
    started = datetime.now(UTC)
    product = _dump_product(config, directory / PRODUCT_DUMP)
    _run([_pg_tool("pg_dump"), *_location(config, config.superset_db_name), "-Fc",
          "-f", str(directory / SUPERSET_DUMP)], config)  # fmt: skip
    secret_values = _secrets(config)
    write_private(
        directory / SECRETS,
        "# The stack's generated secrets at backup time (heartbeat-ops backup). Keep private.\n"
        + "".join(f"{name}={value}\n" for name, value in sorted(secret_values.items())),
    )
    manifest = {
        "format": 1,
        "created_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "product_database": config.pg_database,
        "superset_database": config.superset_db_name,
        **product,
        "superset_row_counts": _superset_counts(config),
        "secrets": sorted(secret_values),
        "files": {
            name: {"bytes": (directory / name).stat().st_size, "sha256": _sha256(directory / name)}
            for name in (PRODUCT_DUMP, SUPERSET_DUMP, SECRETS)
        },
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(directory: Path) -> dict[str, object]:
    """The manifest, with every file checked against its recorded checksum."""
    path = directory / MANIFEST
    if not path.is_file():
        raise BackupError(f"{path} missing: not a heartbeat-ops backup")
    manifest = json.loads(path.read_text())
    for name, recorded in manifest["files"].items():
        if not (directory / name).is_file() or _sha256(directory / name) != recorded["sha256"]:
            raise BackupError(f"{directory / name} is missing or differs from the manifest")
    return manifest


def data_rows(config: StackConfig) -> dict[str, int]:
    """Rows the product database holds beyond what provisioning writes ({}: none, or no db)."""
    try:
        conn = psycopg2.connect(config.admin_dsn)
    except psycopg2.OperationalError as error:
        if "does not exist" in str(error):
            return {}
        raise
    try:
        with conn.cursor() as cur:
            counts = row_counts(cur)
    finally:
        conn.close()
    return {t: n for t, n in counts.items() if n and t not in PROVISIONED_TABLES}


def _restore_secrets(directory: Path) -> str:
    """A stack without secrets takes the backup's; one with its own keeps them."""
    target = secrets_file()
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        write_private(target, (directory / SECRETS).read_text())
        return f"installed the backup's secrets as {target} (0600)"
    if read_env_file(target) == read_env_file(directory / SECRETS):
        return "the stack's secrets equal the backup's"
    return (
        f"kept this stack's own secrets ({target}); the backup's are in {directory / SECRETS}"
        " (the dumps hold no role password; Superset's stored secrets are re-encrypted with"
        " this stack's key below)"
    )


def _align_superset_key(config: StackConfig, directory: Path) -> str:
    """Superset's metadata keeps its connections' passwords encrypted with SUPERSET_SECRET_KEY:
    a stack with a key of its own re-encrypts them from the backup's, or Superset cannot start
    ("Invalid decryption key"). The backup's key goes to Superset on standard input."""
    previous = read_env_file(directory / SECRETS).get("SUPERSET_SECRET_KEY", "")
    if not previous or previous == _secrets(config).get("SUPERSET_SECRET_KEY"):
        return "Superset's stored secrets already use this stack's SUPERSET_SECRET_KEY"
    result = subprocess.run(
        ["bash", str(ROOT / "superset" / "run.sh"), "reencrypt"],
        input=previous + "\n",
        env={**os.environ, **config.environment()},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BackupError(
            f"the databases are restored, but re-encrypting Superset's stored secrets with this"
            f" stack's SUPERSET_SECRET_KEY failed ({reason}); Superset cannot start until it is"
            f" done: run `heartbeat-ops restore {directory} --force` again where Superset's"
            " virtualenv is installed"
        )
    return "re-encrypted Superset's stored secrets from the backup's key to this stack's"


def _recreate(config: StackConfig, name: str, owner: str | None) -> None:
    admin = psycopg2.connect(config.superuser_dsn)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))  # fmt: skip
            create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if owner:
                create += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
            cur.execute(create)
    finally:
        admin.close()


def _forget_job_position(config: StackConfig) -> str:
    """The restored database is older than the job's checkpoint: drop the checkpoint and the
    sink's batch bookkeeping so the job re-reads Kafka (README, "Backups and restore")."""
    with psycopg2.connect(config.admin_dsn) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM stage_messages")
        cur.execute("DELETE FROM sink_progress")
        forgotten = cur.rowcount
    conn.close()
    checkpoint = Path(config.checkpoint_dir)
    removed = checkpoint.exists()
    shutil.rmtree(checkpoint, ignore_errors=True)
    return f"forgot {forgotten} sink batch record(s)" + (
        f"; removed the job's checkpoint {checkpoint}" if removed else ""
    )


def restore(directory: Path, *, force: bool = False, report: Callable[[str], None] = print) -> None:
    """Replace the product and Superset databases with the backup's; `report` each step."""
    manifest = read_manifest(directory)
    report(_restore_secrets(directory))
    config = load()  # after the secrets step: it may have just installed them
    running = [n for n, s in supervisor.states().items() if n in WRITERS and s == "RUNNING"]
    if running:
        raise BackupError(
            f"{', '.join(running)} running: stop the stack (`make down`), start only PostgreSQL"
            " and Kafka (`make infra`), then restore"
        )
    database.bootstrap(config)  # roles and databases exist, as on any provisioned stack
    rows = data_rows(config)
    if rows and not force:
        listed = ", ".join(f"{t} {n:,}" for t, n in sorted(rows.items()))
        raise BackupError(
            f"database {config.pg_database} is not empty ({listed}); restore replaces it whole:"
            " add --force to do that"
        )
    _recreate(config, config.pg_database, owner=None)
    _run([_pg_tool("pg_restore"), *_location(config, config.pg_database), "--no-owner",
          "--exit-on-error", str(directory / PRODUCT_DUMP)], config)  # fmt: skip
    report(f"restored {config.pg_database} from {manifest['created_at']}")
    _recreate(config, config.superset_db_name, owner=config.superset_db_user)
    _run([_pg_tool("pg_restore"), *_location(config, config.superset_db_name), "--no-owner",
          f"--role={config.superset_db_user}", "--exit-on-error",
          str(directory / SUPERSET_DUMP)], config)  # fmt: skip
    report(f"restored Superset's {config.superset_db_name}")
    report(_align_superset_key(config, directory))
    applied = database.bootstrap(config)  # grants, login roles, any newer migration
    report(f"migrations applied after the backup's: {', '.join(applied) or 'none'}")
    report(_forget_job_position(config))


UNREACHABLE = (
    "PostgreSQL is not reachable ({error}); natively start it with `make infra` (after a restore"
    " installed the backup's secrets, that starts the cluster with them), then run this again"
)


def cmd_backup(args: argparse.Namespace) -> int:
    try:
        manifest = backup(load(), Path(args.directory))
    except BackupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except psycopg2.OperationalError as error:
        print(f"error: {UNREACHABLE.format(error=str(error).strip())}", file=sys.stderr)
        return 1
    counts = manifest["row_counts"]
    print(f"backup in {args.directory}: {len(counts)} tables, "
          f"{counts.get('heart_rate_readings', 0):,} readings, "
          f"{counts.get('heart_rate_alerts', 0):,} alert episodes, "
          f"{len(manifest['migrations'])} migrations; Superset's metadata; "
          f"{len(manifest['secrets'])} secrets (0600)")  # fmt: skip
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    try:
        restore(Path(args.directory), force=args.force)
    except BackupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except psycopg2.OperationalError as error:
        print(f"error: {UNREACHABLE.format(error=str(error).strip())}", file=sys.stderr)
        return 1
    print("next: `make up` (the job re-reads Kafka from its earliest retained offset; rows"
          " already restored are skipped by their Kafka provenance)")  # fmt: skip
    return 0


def add_commands(sub) -> None:
    save = sub.add_parser(
        "backup", help="dump the product database, Superset's metadata and the secrets into DIR"
    )
    save.add_argument("directory", metavar="DIR", help="a new or empty directory")
    save.set_defaults(func=cmd_backup)
    back = sub.add_parser("restore", help="restore a backup into this (fresh) stack")
    back.add_argument("directory", metavar="DIR")
    back.add_argument(
        "--force", action="store_true", help="replace a product database that holds data"
    )
    back.set_defaults(func=cmd_restore)
