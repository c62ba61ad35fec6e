"""heart_rate_readings partitioned by day (sql/006): partitions made ahead by the job's own
code, and an existing 005 install upgraded with its rows, grants and guard kept.

The per-batch path (a day without partition, replays) is in test_batch_commit.py, retention
under load with the ledger in test_faults.py, what the roles may not do in test_lockdown.py.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

from heartbeat_ops import migrate
from heartbeat_stream.sinks import partitions
from heartbeat_stream.sinks.alert_store import AlertRules
from heartbeat_stream.sinks.batch_commit import commit_batch

pytestmark = pytest.mark.integration


def midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


def superuser_dsn(stack, database: str | None = None) -> str:
    return stack.dsn(
        user=stack.pg_superuser, password=stack.pg_superuser_password, database=database
    )


def partition_bounds(dsn: str) -> dict[str, tuple[datetime, datetime]]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT partition::text, starts, ends FROM heart_rate_readings_partitions")
        return {name: (starts, ends) for name, starts, ends in cur.fetchall()}


def test_partitions_exist_ahead_of_time(stack, app_db):
    """As the job's role, through the job's own call: today-3 .. today+2, exact UTC days."""
    today = datetime.now(UTC).date()
    last = f"heart_rate_readings_p{today + timedelta(days=partitions.DAYS_AHEAD):%Y%m%d}"
    with psycopg2.connect(superuser_dsn(stack)) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (last,))
        if cur.fetchone()[0] is not None:  # made by provisioning: take it away (it is empty)
            cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(last)))
            assert cur.statusmessage == "DROP TABLE"

    assert partitions.ensure_ahead(app_db) >= 1
    bounds = partition_bounds(superuser_dsn(stack))
    for day in partitions.days_around(today):
        name = f"heart_rate_readings_p{day:%Y%m%d}"
        assert bounds.get(name) == (midnight(day), midnight(day + timedelta(days=1))), name
    assert partitions.ensure_ahead(app_db) == 0  # idempotent


@pytest.fixture
def database_at_005(stack, tmp_path) -> Iterator[str]:
    """A database of its own migrated up to 005 only; dropped afterwards."""
    name = f"heartbeat_upgrade_{os.getpid()}"
    admin = psycopg2.connect(superuser_dsn(stack, "postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    old = tmp_path / "sql-005"
    old.mkdir()
    for path in sorted(migrate.MIGRATIONS_DIR.glob("00[1-5]_*.sql")):
        shutil.copy(path, old / path.name)
    dsn = superuser_dsn(stack, name)
    try:
        assert [m.version for m in migrate.apply_all(dsn, Path(old))] == [1, 2, 3, 4, 5]
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


_ROWS = """
SELECT customer_id, "timestamp", heart_rate, kafka_topic, kafka_partition, kafka_offset,
       ingested_at
FROM heart_rate_readings ORDER BY kafka_topic, kafka_partition, kafka_offset
"""


def test_upgrade_from_005_keeps_rows_grants_and_guard(stack, database_at_005):
    dsn = superuser_dsn(stack, database_at_005)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        # Rows on three days: 40 days ago (past retention), 10 days ago, now.
        cur.execute(
            'INSERT INTO heart_rate_readings (customer_id, "timestamp", heart_rate, kafka_topic,'
            " kafka_partition, kafka_offset, ingested_at)"
            " SELECT 'U' || (g % 7), now() - make_interval(days => (g % 3) * (g % 3) * 10),"
            "  40 + g % 141, 'upgrade', g % 3, g, now() - make_interval(secs => g)"
            " FROM generate_series(1, 3000) AS g"
        )
        cur.execute(_ROWS)
        before = cur.fetchall()
    assert len({row[1].date() for row in before}) >= 3

    assert [m.version for m in migrate.apply_all(dsn)][:1] == [6]  # and any later ones

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(_ROWS)
        assert cur.fetchall() == before
        cur.execute("SELECT relkind FROM pg_class WHERE oid = 'heart_rate_readings'::regclass")
        assert cur.fetchone() == ("p",)
        cur.execute("SELECT to_regclass('heart_rate_readings_005')")
        assert cur.fetchone() == (None,)
        # Every row in the partition of its own UTC day.
        cur.execute(
            "SELECT count(*) FROM heart_rate_readings WHERE tableoid::regclass::text"
            " <> 'heart_rate_readings_p' || to_char(\"timestamp\" AT TIME ZONE 'UTC', 'YYYYMMDD')"
        )
        assert cur.fetchone() == (0,)
        cur.execute(
            "SELECT privilege, has_table_privilege('heartbeat_writer', 'heart_rate_readings',"
            " privilege), has_table_privilege('heartbeat_readonly', 'heart_rate_readings',"
            " privilege) FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'])"
            " AS privilege"
        )
        assert cur.fetchall() == [
            ("SELECT", True, True),
            ("INSERT", True, False),
            ("UPDATE", False, False),
            ("DELETE", False, False),
            ("TRUNCATE", False, False),
        ]
        cur.execute(
            "SELECT f, has_function_privilege('heartbeat_writer', f, 'EXECUTE'),"
            " has_function_privilege('heartbeat_readonly', f, 'EXECUTE'),"
            " has_function_privilege('public', f, 'EXECUTE'), p.prosecdef, p.proconfig"
            " FROM unnest(ARRAY['heartbeat_ensure_readings_partitions(date[])',"
            " 'heartbeat_drop_readings_partitions(timestamptz)']) AS f"
            " JOIN pg_proc p ON p.oid = f::regprocedure"
        )
        for function, writer, reader, public, definer, settings in cur.fetchall():
            assert (writer, reader, public, definer) == (True, False, False, True), function
            assert "search_path=pg_catalog, pg_temp" in settings, function
        cur.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'heart_rate_readings'::regclass"
            " AND NOT tgisinternal"
        )
        assert cur.fetchall() == [("heart_rate_readings_retention_only",)]

    # The job's role writes through the sink's own transaction on the upgraded table, and a
    # message already stored before the upgrade conflicts on the new key.
    app = psycopg2.connect(
        stack.dsn(user=stack.pg_user, password=stack.pg_password, database=database_at_005)
    )
    try:
        stored = before[0]
        with app, app.cursor() as cur:
            cur.executemany(
                "INSERT INTO stage_messages (sink_id, batch_id, kafka_topic, kafka_partition,"
                ' kafka_offset, customer_id, "timestamp", heart_rate) VALUES'
                " ('upgrade', 0, %s, %s, %s, %s, %s, %s)",
                [
                    (stored[3], stored[4], stored[5], stored[0], stored[1], stored[2]),
                    ("upgrade", 0, 1_000_000, "U-new", datetime.now(UTC), 77),
                ],
            )
        assert commit_batch(app, "upgrade", 0, AlertRules()).valid == 1
    finally:
        app.close()
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM heart_rate_readings")
        assert cur.fetchone() == (len(before) + 1,)
