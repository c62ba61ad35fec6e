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

from heartbeat_ops.config import (
    GENERATED_SECRETS,
    ROOT,
    ensure_secrets,
    read_env_file,
    secrets_file,
)
from tests.support.db import superuser_query
from tests.support.sockets import descendants, is_loopback, listening_addresses

pytestmark = pytest.mark.integration

REFUSED = (psycopg2.errors.InsufficientPrivilege, psycopg2.errors.ReadOnlySqlTransaction)


def superuser(stack):
    return psycopg2.connect(stack.admin_dsn)


@pytest.fixture
def two_readings(stack):
    """One reading 40 days old (past retention), one fresh, and a quarantined row of each age;
    removed afterwards. Yields the topic and the fresh reading's partition."""
    topic = f"test-lockdown-{os.getpid()}"
    conn = superuser(stack)
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT heartbeat_ensure_readings_partitions(ARRAY[(now() AT TIME ZONE 'UTC')::date,"
            " ((now() - interval '40 days') AT TIME ZONE 'UTC')::date])"
        )
        cur.execute(
            'INSERT INTO heart_rate_readings (customer_id, "timestamp", heart_rate, kafka_topic,'
            " kafka_partition, kafka_offset)"
            " VALUES ('L1', now() - interval '40 days', 70, %s, 0, 0),"
            " ('L1', now(), 71, %s, 0, 1)"
            " RETURNING tableoid::regclass::text",
            (topic, topic),
        )
        fresh_partition = cur.fetchall()[1][0]
        cur.execute(
            "INSERT INTO rejected_readings (raw_value, reason, detail, kafka_topic,"
            " kafka_partition, kafka_offset, ingested_at)"
            " VALUES ('x', 'malformed_json', 'old', %s, 0, 2, now() - interval '40 days'),"
            " ('y', 'malformed_json', 'fresh', %s, 0, 3, now())",
            (topic, topic),
        )
    yield topic, fresh_partition  # offsets 0 and 2 are old, 1 and 3 fresh
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM heart_rate_readings WHERE kafka_topic = %s", (topic,))
        cur.execute("DELETE FROM rejected_readings WHERE kafka_topic = %s", (topic,))
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
        "CREATE TABLE public.catch_all PARTITION OF heart_rate_readings DEFAULT",
    ],
)
def test_job_role_is_refused_ddl(app_db, statement):
    with app_db.cursor() as cur, pytest.raises(REFUSED):
        cur.execute(statement)
    app_db.rollback()


def readings_of(stack, topic: str) -> list[int]:
    query = "SELECT kafka_offset FROM heart_rate_readings WHERE kafka_topic = %s ORDER BY 1"
    return [offset for (offset,) in superuser_query(stack, query, topic)]


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM heart_rate_readings WHERE kafka_topic = %(topic)s",
        "DELETE FROM {partition}",
        "TRUNCATE {partition}",
        "DROP TABLE {partition}",
        "ALTER TABLE heart_rate_readings DETACH PARTITION {partition}",
        "SELECT heartbeat_drop_readings_partitions(now())",
        "SELECT heartbeat_drop_readings_partitions(now() - interval '23 hours')",
    ],
)
def test_job_role_cannot_remove_young_readings(stack, app_db, two_readings, statement):
    """Raw readings leave only by whole partitions older than a day, through the function."""
    topic, partition = two_readings
    with app_db.cursor() as cur, pytest.raises(REFUSED):
        cur.execute(statement.format(partition=partition), {"topic": topic})
    app_db.rollback()
    assert readings_of(stack, topic) == [0, 1]


def test_job_role_retires_only_past_retention(stack, app_db, two_readings):
    topic, _ = two_readings
    # Quarantined rows: deletes, guarded row by row (sql/005).
    delete = "DELETE FROM rejected_readings WHERE kafka_topic = %s AND kafka_offset = %s"
    with app_db.cursor() as cur, pytest.raises(REFUSED, match="only rows older than 1 day"):
        cur.execute(delete, (topic, 3))
    app_db.rollback()
    with app_db, app_db.cursor() as cur:
        cur.execute(delete, (topic, 2))
        assert cur.rowcount == 1  # retention still works
    # Raw readings: the 40-day-old day's partition is dropped whole, the fresh row stays.
    with app_db, app_db.cursor() as cur:
        cur.execute("SELECT heartbeat_drop_readings_partitions(now() - interval '30 days')")
        assert cur.fetchall()  # at least the old reading's partition
    assert readings_of(stack, topic) == [1]


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
        "SELECT heartbeat_ensure_readings_partitions(ARRAY[current_date])",
        "SELECT heartbeat_drop_readings_partitions(now() - interval '30 days')",
    ],
)
def test_reader_role_is_refused_any_write(stack, statement):
    conn = psycopg2.connect(stack.reader_dsn)
    try:
        with conn.cursor() as cur, pytest.raises(REFUSED):
            cur.execute(statement)
    finally:
        conn.close()


def test_every_native_service_listens_on_loopback_only(stack, world):
    """PostgreSQL and Kafka as the product configures them (programs.py, nodes.py), here the
    tests' world's instances of them."""
    pids = [pid for process in (world.postgres, world.kafka) for pid in descendants(process.pid)]
    sockets = listening_addresses(pids)
    ports = {int(a.rsplit(":", 1)[1]) for addrs in sockets.values() for a in addrs}
    # Not vacuous: PostgreSQL's and Kafka's (broker and controller) sockets were found.
    assert {stack.pg_port, stack.kafka_port, stack.kafka_controller_port} <= ports, sockets
    exposed = {pid: a for pid, addrs in sockets.items() for a in addrs if not is_loopback(a)}
    assert exposed == {}, f"listening beyond loopback: {exposed}"


def test_no_secret_in_the_tree_and_secrets_file_private(world, tmp_path, monkeypatch):
    """The secrets generated on first run go to a private file; neither those of this checkout's
    stack (if it ever ran) nor the world's are anywhere in git."""
    stacks = [read_env_file(secrets_file()), world.secrets]
    monkeypatch.setenv("HEARTBEAT_VAR_DIR", str(tmp_path))  # a first run, in a var of its own
    stacks.append(ensure_secrets())
    assert stat.S_IMODE(secrets_file().stat().st_mode) == 0o600
    values = {
        v for s in stacks for k, v in s.items() if k in GENERATED_SECRETS and len(v) >= 12
    }  # fmt: skip
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
