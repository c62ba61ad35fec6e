"""Lock-down: each role is refused what it must not do, every native service listens on loopback
only, no secret is in the tree, and the generated secrets file is private."""

from __future__ import annotations

import os
import re
import stat
import subprocess

import psycopg2
import psycopg2.errors
import pytest

from heartbeat_ops import supervisor
from heartbeat_ops.config import GENERATED_SECRETS, ROOT, read_env_file, secrets_file
from tests.support.sockets import descendants, is_loopback, listening_addresses

pytestmark = pytest.mark.integration

REFUSED = (psycopg2.errors.InsufficientPrivilege, psycopg2.errors.ReadOnlySqlTransaction)


def superuser(stack):
    return psycopg2.connect(
        stack.dsn(user=stack.pg_superuser, password=stack.pg_superuser_password)
    )


@pytest.fixture
def two_readings(stack):
    """One reading 40 days old (past retention), one fresh; removed afterwards."""
    topic = f"test-lockdown-{os.getpid()}"
    conn = superuser(stack)
    with conn, conn.cursor() as cur:
        cur.execute(
            'INSERT INTO heart_rate_readings (customer_id, "timestamp", heart_rate, kafka_topic,'
            " kafka_partition, kafka_offset)"
            " VALUES ('L1', now() - interval '40 days', 70, %s, 0, 0),"
            " ('L1', now(), 71, %s, 0, 1)",
            (topic, topic),
        )
    yield topic  # offset 0 is old, offset 1 fresh
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM heart_rate_readings WHERE kafka_topic = %s", (topic,))
    conn.close()


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE public.not_allowed (x int)",
        "DROP TABLE heart_rate_readings",
        "ALTER TABLE heart_rate_readings ADD COLUMN x int",
        "TRUNCATE heart_rate_readings",
        "CREATE INDEX nope ON heart_rate_readings (heart_rate)",
        "DROP TRIGGER heart_rate_readings_retention_only ON heart_rate_readings",
        "CREATE SCHEMA intruder",
        "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "ALTER ROLE heartbeat_writer SUPERUSER",
        "UPDATE heart_rate_readings SET heart_rate = 100",
    ],
)
def test_job_role_is_refused_ddl(app_db, statement):
    with app_db.cursor() as cur, pytest.raises(REFUSED):
        cur.execute(statement)
    app_db.rollback()


def test_job_role_deletes_only_past_retention(stack, app_db, two_readings):
    delete = "DELETE FROM heart_rate_readings WHERE kafka_topic = %s AND kafka_offset = %s"
    with app_db.cursor() as cur, pytest.raises(REFUSED, match="only rows older than 1 day"):
        cur.execute(delete, (two_readings, 1))
    app_db.rollback()
    with app_db, app_db.cursor() as cur:
        cur.execute(delete, (two_readings, 0))
        assert cur.rowcount == 1  # retention still works


@pytest.mark.parametrize(
    "statement",
    [
        'INSERT INTO heart_rate_readings (customer_id, "timestamp", heart_rate, kafka_topic,'
        " kafka_partition, kafka_offset) VALUES ('R', now(), 70, 'reader', 0, 0)",
        "UPDATE heart_rate_minute SET readings = readings + 1",
        "DELETE FROM rejected_readings",
        "TRUNCATE pipeline_metrics",
        "CREATE TABLE public.reader_table (x int)",
        "SELECT * FROM sink_progress",
        "SET default_transaction_read_only = off;"
        " INSERT INTO heart_rate_alerts (sink_id) VALUES ('x')",
    ],
)
def test_reader_role_is_refused_any_write(stack, statement):
    conn = psycopg2.connect(stack.reader_dsn)
    try:
        with conn.cursor() as cur, pytest.raises(REFUSED):
            cur.execute(statement)
    finally:
        conn.close()


def test_every_native_service_listens_on_loopback_only(stack):
    assert supervisor.is_running(), "run `make infra` first"
    supervisord_pid = int(supervisor.pid_path().read_text().strip())
    sockets = listening_addresses(descendants(supervisord_pid))
    ports = {int(a.rsplit(":", 1)[1]) for addrs in sockets.values() for a in addrs}
    # Not vacuous: PostgreSQL's and Kafka's (broker and controller) sockets were found.
    assert {stack.pg_port, stack.kafka_port, stack.kafka_controller_port} <= ports, sockets
    exposed = {pid: a for pid, addrs in sockets.items() for a in addrs if not is_loopback(a)}
    assert exposed == {}, f"listening beyond loopback: {exposed}"


def test_no_secret_in_the_tree_and_secrets_file_private():
    path = secrets_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = {v for k, v in read_env_file(path).items() if k in GENERATED_SECRETS and len(v) >= 12}
    assert values, "no generated secrets to look for"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    key_pattern = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")
    leaks = []
    for name in tracked.stdout.decode().split("\0"):
        file = ROOT / name
        if not name or not file.is_file():
            continue
        content = file.read_bytes()
        if key_pattern.search(content) or any(v.encode() in content for v in values):
            leaks.append(name)
        if name.endswith(".env") or name.endswith("secrets.env"):
            leaks.append(name)
    assert leaks == []
