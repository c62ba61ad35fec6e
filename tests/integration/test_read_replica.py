"""The dashboards' read replica (issue 22, README "Read replica"): a hot standby of the tests'
world, made by the product's code (replication role, slot, pg_basebackup -R) on a free port.
Rows committed on the primary are visible on the replica within a printed bound; the replica
refuses writes; pg_hba lets only the replication role replicate; a stopped replica catches up
through its slot; the real notifier records the lag in pipeline_metrics."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2 import errors

from heartbeat_notifier import replica_lag
from heartbeat_ops import replica
from heartbeat_ops.config import StackConfig
from tests.support import figures
from tests.support.notifier import NotifierProcess
from tests.support.replica import Replica, replica_of
from tests.support.stream_job import wait_for
from tests.support.world import World

pytestmark = pytest.mark.integration

# A committed row shows on the replica within this (asynchronous streaming on a loaded 2 cores).
VISIBLE_WITHIN_S = 5.0
ROUNDS = 20


@pytest.fixture(scope="module")
def standby(world: World) -> Iterator[Replica]:
    with replica_of(world) as running:
        yield running


def _mark_rows(cur, tag: str) -> None:
    cur.execute("DELETE FROM pipeline_metrics WHERE query_id LIKE %s", (f"{tag}%",))


def test_rows_committed_on_the_primary_show_on_the_replica_within_a_bound(
    standby: Replica, stack: StackConfig
):
    tag = f"replica-visibility-{uuid.uuid4().hex[:8]}"
    primary = psycopg2.connect(stack.admin_dsn)
    reader = standby.connect()
    reader.autocommit = True
    delays = []
    try:
        for batch in range(ROUNDS):
            with primary, primary.cursor() as cur:
                cur.execute(
                    "INSERT INTO pipeline_metrics (query_id, query_name, batch_id, run_id,"
                    " batch_time, input_rows, batch_duration_ms)"
                    " VALUES (%s, 'readings', %s, %s, now(), %s, 1)",
                    (tag, batch, tag, batch * 10),
                )
            committed = time.monotonic()

            def visible(b: int = batch) -> bool:
                with reader.cursor() as cur:
                    cur.execute(
                        "SELECT input_rows FROM pipeline_metrics"
                        " WHERE query_id = %s AND batch_id = %s",
                        (tag, b),
                    )
                    row = cur.fetchone()
                    return row is not None and row[0] == b * 10

            wait_for(visible, VISIBLE_WITHIN_S, f"row {batch} on the replica", poll=0.005)
            delays.append(time.monotonic() - committed)
    finally:
        with primary, primary.cursor() as cur:
            _mark_rows(cur, tag)
        primary.close()
        reader.close()
    figures.record(
        "read replica: commit on the primary -> visible on the replica",
        rounds=ROUNDS,
        median_ms=round(statistics.median(delays) * 1000, 1),
        max_ms=round(max(delays) * 1000, 1),
        bound_s=VISIBLE_WITHIN_S,
    )
    print(f"\nvisible on the replica after median {statistics.median(delays) * 1000:.1f} ms,"
          f" max {max(delays) * 1000:.1f} ms (bound {VISIBLE_WITHIN_S} s)")  # fmt: skip
    assert max(delays) < VISIBLE_WITHIN_S


def test_the_replica_refuses_writes(standby: Replica):
    conn = standby.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery()")
            assert cur.fetchone()[0] is True
            with pytest.raises(errors.ReadOnlySqlTransaction):
                cur.execute(
                    "INSERT INTO pipeline_metrics (query_id, query_name, batch_id, run_id,"
                    " batch_time, input_rows, batch_duration_ms)"
                    " VALUES ('replica-write', 'readings', 1, 'x', now(), 0, 0)"
                )
        conn.rollback()
        with conn.cursor() as cur, pytest.raises(errors.ReadOnlySqlTransaction):
            cur.execute("CREATE TABLE replica_write_probe (id int)")
    finally:
        conn.close()


def test_only_the_replication_role_may_replicate(standby: Replica, stack: StackConfig):
    """pg_hba names the replication role; initdb's `replication all` rules are off, so even the
    superuser's replication connection is refused. The role itself can do nothing else."""
    with pytest.raises(psycopg2.OperationalError, match=r"no pg_hba\.conf entry"):
        psycopg2.connect(stack.superuser_dsn + " replication=true")
    conn = psycopg2.connect(stack.superuser_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolcanlogin,"
                " rolbypassrls FROM pg_roles WHERE rolname = %s",
                (stack.replication_user,),
            )
            assert cur.fetchone() == (False, False, False, True, True, False)
            cur.execute(
                "SELECT has_database_privilege(%s, %s, 'CONNECT')",
                (stack.replication_user, stack.pg_database),
            )
            assert cur.fetchone()[0] is False  # the product database: no
    finally:
        conn.close()


def test_lag_is_recorded_by_the_notifier_and_a_stopped_replica_catches_up(
    standby: Replica, stack: StackConfig, world: World, alerts_topic: str, tmp_path
):
    tag = f"replica-catch-up-{uuid.uuid4().hex[:8]}"
    notifier = NotifierProcess(stack, alerts_topic, f"{tag}-group", tmp_path / "notifier.log")
    admin = psycopg2.connect(stack.admin_dsn)
    admin.autocommit = True
    started = time.monotonic()
    notifier.start()
    try:

        def lag_rows(since: float, streaming: bool) -> list[tuple]:
            with admin.cursor() as cur:
                cur.execute(
                    "SELECT replica_lag_bytes, replica_lag_seconds, details->>'streaming'"
                    " FROM pipeline_metrics WHERE query_name = 'replica'"
                    " AND query_id = %s AND batch_time > to_timestamp(%s)"
                    " AND details->>'streaming' = %s ORDER BY batch_time",
                    (f"replica:{replica.SLOT_NAME}", since, str(streaming).lower()),
                )
                return cur.fetchall()

        since = time.time()
        # One round of the notifier's figures (every 10 s) records the streaming replica's lag.
        wait_for(lambda: lag_rows(since, True), 60, "the notifier's replica lag row")
        bytes_, seconds, _ = lag_rows(since, True)[0]
        assert bytes_ is not None and bytes_ >= 0 and seconds is not None and seconds >= 0
        figures.record("read replica: first lag row from the notifier",
                       after_s=round(time.monotonic() - started, 1), lag_bytes=bytes_,
                       lag_seconds=seconds)  # fmt: skip

        # Stopped: the slot keeps its WAL, the lag in bytes grows, no seconds while it is away.
        standby.stop()
        with admin.cursor() as cur:
            cur.execute(
                "INSERT INTO pipeline_metrics (query_id, query_name, batch_id, run_id, batch_time,"
                " input_rows, batch_duration_ms)"
                " SELECT %s, 'readings', b, %s, now(), b, 1 FROM generate_series(1, 2000) b",
                (tag, tag),
            )
        since = time.time()
        wait_for(lambda: lag_rows(since, False), 60, "a lag row of the stopped replica")
        bytes_, seconds, _ = lag_rows(since, False)[0]
        assert bytes_ > 0 and seconds is None, (bytes_, seconds)

        restarted = time.monotonic()
        standby.start()
        standby.caught_up()
        caught_up = time.monotonic() - restarted  # start, replay of what it missed
        reader = standby.connect()
        with reader.cursor() as cur:
            cur.execute("SELECT count(*) FROM pipeline_metrics WHERE query_id = %s", (tag,))
            assert cur.fetchone()[0] == 2000
        reader.close()
        since = time.time()
        wait_for(lambda: lag_rows(since, True), 60, "a lag row of the returned replica")
        figures.record("read replica: restarted and caught up after a stop",
                       seconds=round(caught_up, 2), retained_bytes=bytes_)  # fmt: skip
    finally:
        notifier.stop()
        with admin.cursor() as cur:
            _mark_rows(cur, tag)
            cur.execute("DELETE FROM pipeline_metrics WHERE query_name = 'replica'")
        admin.close()


def test_the_notifiers_role_reads_only_the_lag(stack: StackConfig, standby: Replica):
    """The notifier's role may run the lag reader (SECURITY DEFINER) but gets no statistics
    role: pg_stat_replication's lag columns stay hidden from it."""
    conn = psycopg2.connect(stack.notifier_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT slot_name, streaming FROM heartbeat_replica_lag()")
            assert cur.fetchall() == [(replica.SLOT_NAME, True)]
            cur.execute("SELECT replay_lsn FROM pg_stat_replication")
            assert {row[0] for row in cur.fetchall()} == {None}
            cur.execute("SELECT pg_has_role(current_user, 'pg_read_all_stats', 'member')")
            assert cur.fetchone()[0] is False
            cur.execute(
                "SELECT has_function_privilege('public', f, 'EXECUTE'),"
                " has_function_privilege('heartbeat_readonly', f, 'EXECUTE'),"
                " has_function_privilege('heartbeat_writer', f, 'EXECUTE'), p.prosecdef,"
                " p.proconfig FROM (SELECT 'heartbeat_replica_lag()'::regprocedure AS f) x"
                " JOIN pg_proc p ON p.oid = x.f"
            )
            public, reader, writer, definer, settings = cur.fetchone()
            assert (public, reader, writer, definer) == (False, False, False, True)
            assert "search_path=pg_catalog, pg_temp" in settings
            assert replica_lag.record(
                cur, run_id="test", ended_at=_now(cur), seconds=10.0
            ) == 1  # fmt: skip
    finally:
        conn.close()
        admin = psycopg2.connect(stack.admin_dsn)
        with admin, admin.cursor() as cur:
            cur.execute("DELETE FROM pipeline_metrics WHERE run_id = 'test'"
                        " AND query_name = 'replica'")  # fmt: skip
        admin.close()


def _now(cur):
    cur.execute("SELECT now()")
    return cur.fetchone()[0]
