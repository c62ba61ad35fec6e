"""The live stack of this checkout (`make infra` / `make up`), as a test run could disturb it.

Recorded when the session starts and again by the test that runs last: the supervised programs'
pids, the databases and roles of the live cluster, row counts of the main tables, and the end
offsets of the live topics. The live stack's own writers keep working during the run (the
producer grows the readings topic, the job the tables and the alerts topic), so what those
running programs write is left out of the comparison; everything else must be unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg2
from kafka import KafkaAdminClient
from psycopg2 import sql

from heartbeat_contract.kafka_security import ADMIN, kafka_client_args
from heartbeat_ops import supervisor
from heartbeat_ops.config import StackConfig, load, scrub_ambient_libpq, write_private
from tests.support.kafka import end_offsets

TABLES = (
    "heart_rate_readings", "rejected_readings", "heart_rate_minute", "heart_rate_alerts",
    "pipeline_metrics", "sink_progress", "stage_messages", "schema_migrations",
)  # fmt: skip
# Rows no live program writes: another topic's messages, customers not named like the producer's.
_FOREIGN_ROWS = {
    "foreign readings": "SELECT count(*) FROM heart_rate_readings WHERE kafka_topic <> %(t)s",
    "foreign rejects": "SELECT count(*) FROM rejected_readings WHERE kafka_topic <> %(t)s",
    "foreign rollups": "SELECT count(*) FROM heart_rate_minute WHERE customer_id !~ '^C[0-9]+$'",
    "foreign alerts": "SELECT count(*) FROM heart_rate_alerts WHERE customer_id !~ '^C[0-9]+$'",
}
# Which live program writes what (left out of the comparison while it runs).
_WRITES_TABLES = ("stream-job",)


@dataclass(frozen=True)
class LiveSnapshot:
    pids: dict[str, int]  # supervised program -> pid (0: not running)
    databases: frozenset[str]
    roles: frozenset[str]
    rows: dict[str, int]
    offsets: dict[str, dict[int, int]]  # topic -> partition -> end offset


@dataclass(frozen=True)
class Recorded:
    """The live stack's settings (kept out of reprs: they hold its passwords) and what it
    looked like at the session start, or why it could not be read."""

    config: StackConfig = field(repr=False)
    before: LiveSnapshot | Exception


def record() -> Recorded | None:
    """The live stack as the session finds it; None when none of this checkout is running."""
    config = live_config()
    if config is None:
        return None
    try:
        return Recorded(config, take(config))
    except Exception as error:  # reported by the live stack check, not as a session crash
        return Recorded(config, error)


def save(recorded: Recorded | None, path: Path) -> None:
    """Keep the session start's snapshot for the check that a parallel run makes afterwards, in
    a later pytest process (no password in it: the check loads the live settings again)."""
    if recorded is None:
        text = json.dumps(None)
    elif isinstance(recorded.before, Exception):
        text = json.dumps({"error": repr(recorded.before)})
    else:
        fields = asdict(recorded.before)
        fields["databases"], fields["roles"] = sorted(fields["databases"]), sorted(fields["roles"])
        text = json.dumps({"snapshot": fields})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, text)


def load_saved(path: Path) -> Recorded | None:
    """The snapshot `save` kept, with the live stack's settings as they are now."""
    saved = json.loads(path.read_text())
    if saved is None:
        return None
    config = live_config()
    if config is None:
        return Recorded(load(), RuntimeError("the live stack ran when the run started, not now"))
    if "error" in saved:
        return Recorded(config, RuntimeError(saved["error"]))
    fields = saved["snapshot"]
    return Recorded(config, LiveSnapshot(
        pids=fields["pids"], databases=frozenset(fields["databases"]),
        roles=frozenset(fields["roles"]), rows=fields["rows"],
        offsets={topic: {int(p): end for p, end in ends.items()}
                 for topic, ends in fields["offsets"].items()},
    ))  # fmt: skip


def live_config() -> StackConfig | None:
    """This checkout's running stack (its secrets file and environment), or None if not up.

    Read before the tests point the environment at their own world.
    """
    if not supervisor.is_running():
        return None
    scrub_ambient_libpq()  # as heartbeat-ops does: a psql user's PGUSER must not leak in
    return load()


def _pids() -> dict[str, int]:
    pids = {}
    for name in supervisor.states():
        output = supervisor.ctl("pid", name).stdout.strip()
        pids[name] = int(output) if output.isdigit() else 0
    pids["supervisord"] = int(supervisor.pid_path().read_text().strip())
    return pids


def take(config: StackConfig) -> LiveSnapshot:
    """What the live stack looks like now (as its superuser; reads only)."""
    with psycopg2.connect(config.superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database")
        databases = frozenset(row[0] for row in cur.fetchall())
        cur.execute("SELECT rolname FROM pg_roles")
        roles = frozenset(row[0] for row in cur.fetchall())
    conn.close()
    rows = {}
    with psycopg2.connect(config.admin_dsn) as conn, conn.cursor() as cur:
        for table in TABLES:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
            rows[table] = cur.fetchone()[0]
        for name, query in _FOREIGN_ROWS.items():
            cur.execute(query, {"t": config.kafka_topic})
            rows[name] = cur.fetchone()[0]
    conn.close()
    # The live stack's own admin login: by the end of the run the environment (and so the
    # tests' own clients) points at the world's broker and credentials.
    login = kafka_client_args(config, ADMIN)
    admin = KafkaAdminClient(**login)
    try:
        names = sorted(admin.list_topics())
    finally:
        admin.close()
    offsets = {
        name: end_offsets(config.kafka_bootstrap_servers, name, login) or {} for name in names
    }
    return LiveSnapshot(_pids(), databases, roles, rows, offsets)


def differences(config: StackConfig, before: LiveSnapshot, after: LiveSnapshot) -> list[str]:
    """What changed on the live stack, less what its own running programs write."""
    running = {name for name, pid in before.pids.items() if pid}
    found = []
    if before.pids != after.pids:
        found.append(f"supervised pids {before.pids} -> {after.pids}")
    if before.databases != after.databases:
        found.append(f"databases {sorted(before.databases)} -> {sorted(after.databases)}")
    if before.roles != after.roles:
        found.append(f"roles {sorted(before.roles)} -> {sorted(after.roles)}")
    tables_written = bool(running & set(_WRITES_TABLES))
    for name, count in before.rows.items():
        if tables_written and name in TABLES:
            continue  # the live job writes these (and retention deletes from them)
        if after.rows.get(name) != count:
            found.append(f"{name}: {count} rows -> {after.rows.get(name)}")
    written_topics = {"__consumer_offsets"}  # consumer groups of the live programs
    if "producer" in running:
        written_topics.add(config.kafka_topic)
    if "stream-job" in running:
        written_topics.add(config.kafka_alerts_topic)
    if set(before.offsets) != set(after.offsets):
        found.append(f"topics {sorted(before.offsets)} -> {sorted(after.offsets)}")
    for topic, ends in before.offsets.items():
        if topic not in written_topics and after.offsets.get(topic, ends) != ends:
            found.append(f"topic {topic} end offsets {ends} -> {after.offsets[topic]}")
    return found
