"""Superset's data connection logs in as heartbeat_reader: it can read the dashboard's tables and
nothing else. Both guards are checked: read-only transactions by default, and no write grants
even when a session asks for a read-write transaction."""

from __future__ import annotations

import psycopg2
import pytest
from psycopg2 import errors

pytestmark = pytest.mark.integration

WRITES = {
    "insert": "INSERT INTO heart_rate_readings (customer_id, heart_rate, kafka_topic,"
    ' kafka_partition, kafka_offset, "timestamp")'
    " VALUES ('reader-probe', 70, 'reader-probe', 0, 0, now())",
    "update": "UPDATE heart_rate_minute SET readings = readings + 1",
    "delete": "DELETE FROM rejected_readings",
    "truncate": "TRUNCATE pipeline_metrics",
    "update alert defaults": "UPDATE alert_defaults SET high_bpm = 200",
    "create table": "CREATE TABLE public.reader_probe (x int)",
    "create temp table": "CREATE TEMP TABLE reader_probe (x int)",
    "create schema": "CREATE SCHEMA reader_probe",
    "alter table": "ALTER TABLE heart_rate_alerts ADD COLUMN reader_probe int",
    "create index": "CREATE INDEX reader_probe ON heart_rate_readings (heart_rate)",
    "create function": "CREATE FUNCTION public.reader_probe() RETURNS int"
    " LANGUAGE sql AS 'SELECT 1'",
}
DASHBOARD_TABLES = (
    "heart_rate_readings",
    "heart_rate_minute",
    "heart_rate_minute_bins",  # a view over heart_rate_minute
    "heart_rate_alerts",
    "rejected_readings",
    "pipeline_metrics",
)


@pytest.fixture
def reader(stack):
    conn = psycopg2.connect(stack.reader_dsn)
    try:
        yield conn
    finally:
        conn.close()


def test_reader_can_read_the_dashboard_tables(reader, superuser_dsn):
    """The reader sees every row of each dashboard table: what the superuser counts, no fewer
    (no privilege missing, no row-level policy hiding rows). Nothing writes during the test."""
    with psycopg2.connect(superuser_dsn) as admin, admin.cursor() as cur:
        expected = {}
        for table in DASHBOARD_TABLES:
            cur.execute(f"SELECT count(*) FROM {table}")
            expected[table] = cur.fetchone()[0]
    seen = {}
    with reader.cursor() as cur:
        for table in DASHBOARD_TABLES:
            cur.execute(f"SELECT count(*) FROM {table}")
            seen[table] = cur.fetchone()[0]
        cur.execute("SHOW default_transaction_read_only")
        assert cur.fetchone()[0] == "on"
    assert seen == expected


def test_reader_sessions_never_wait_for_jit(reader, superuser_dsn):
    """The customer picker's plan costs more than jit_above_cost: the superuser's session would
    compile it with LLVM (tens of ms per visit), the dashboards' role never does."""
    query = "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM heart_rate_customer_priority"
    with psycopg2.connect(superuser_dsn) as admin, admin.cursor() as cur:
        cur.execute("SET jit_above_cost = 0")  # the cluster's default JIT, whatever the data
        cur.execute(query)
        assert "JIT" in cur.fetchone()[0][0]
    with reader.cursor() as cur:
        cur.execute("SHOW jit")
        assert cur.fetchone()[0] == "off"
        cur.execute("SET jit_above_cost = 0")
        cur.execute(query)
        assert "JIT" not in cur.fetchone()[0][0]
    reader.rollback()


@pytest.mark.parametrize("statement", WRITES.values(), ids=WRITES.keys())
def test_reader_sessions_are_read_only(reader, statement):
    with reader.cursor() as cur, pytest.raises(errors.ReadOnlySqlTransaction):
        cur.execute(statement)
    reader.rollback()


@pytest.mark.parametrize("statement", WRITES.values(), ids=WRITES.keys())
def test_reader_has_no_write_privilege_even_read_write(reader, statement):
    """Turning the read-only default off does not help: the role holds no such privilege."""
    with reader.cursor() as cur:
        cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE")
        reader.commit()
        with pytest.raises((errors.InsufficientPrivilege, errors.UndefinedTable)) as raised:
            cur.execute(statement)
    reader.rollback()
    assert not isinstance(raised.value, errors.UndefinedTable), raised.value


def test_reader_cannot_see_the_jobs_internal_tables(reader, superuser_dsn):
    with psycopg2.connect(superuser_dsn) as admin, admin.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            " AND table_name IN ('stage_messages', 'alert_trackers', 'sink_progress')"
        )
        internal = [row[0] for row in cur.fetchall()]
    assert "stage_messages" in internal
    for table in internal:
        with reader.cursor() as cur, pytest.raises(errors.InsufficientPrivilege):
            cur.execute(f"SELECT 1 FROM {table} LIMIT 1")
        reader.rollback()
