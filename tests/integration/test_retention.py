"""Retention as the job runs it (runtime/retention.py), as the job's role, on the real database:
the 30-day boundary of raw readings' day partitions, the chunked deletes of quarantined rows
and metrics, and the guard that refuses the job's role any delete of a row younger than a day.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

import psycopg2
import psycopg2.errors
import pytest

from heartbeat_stream.config import JobConfig
from heartbeat_stream.runtime import retention
from heartbeat_stream.sinks import partitions
from tests.support.db import superuser_query

pytestmark = pytest.mark.integration

RAW_DAYS, METRICS_DAYS = 30, 14  # the defaults (README, "Configuration")


def partition_of(day) -> str:
    return f"heart_rate_readings_p{day:%Y%m%d}"


def exists(stack, table: str) -> bool:
    return superuser_query(stack, "SELECT to_regclass(%s) IS NOT NULL", table)[0][0]


@pytest.fixture
def job_config(stack, monkeypatch) -> JobConfig:
    """The job's settings, pointed at the tests' database, as the job's role."""
    for name, value in {
        "HEARTBEAT_PG_HOST": stack.pg_host, "HEARTBEAT_PG_PORT": str(stack.pg_port),
        "HEARTBEAT_PG_DATABASE": stack.pg_database, "HEARTBEAT_APP_USER": stack.pg_user,
        "HEARTBEAT_APP_PASSWORD": stack.pg_password,
        "HEARTBEAT_RAW_RETENTION_DAYS": str(RAW_DAYS),
        "HEARTBEAT_METRICS_RETENTION_DAYS": str(METRICS_DAYS),
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    config = JobConfig()
    assert config.pg_database == stack.pg_database != "heartbeat"
    return config


def test_a_day_ending_under_30_days_ago_is_kept_and_one_ending_30_or_more_is_dropped(stack, app_db):
    """Whole UTC days: the latest day whose end is not yet 30 days past (it ends 29 to 30 days
    ago) keeps its readings; the day before it (ending 30 to 31 days ago) is dropped whole."""
    now = superuser_query(stack, "SELECT now()")[0][0]
    horizon = now - timedelta(days=RAW_DAYS)
    kept_day = horizon.astimezone(UTC).date()  # ends at the first midnight after the horizon
    dropped_day = kept_day - timedelta(days=1)
    kept_end = datetime.combine(kept_day + timedelta(days=1), time(), UTC)
    assert timedelta(days=RAW_DAYS - 1) <= now - kept_end < timedelta(days=RAW_DAYS)
    assert now - (kept_end - timedelta(days=1)) >= timedelta(days=RAW_DAYS)

    topic = f"test-retention-{uuid.uuid4().hex[:8]}"
    superuser_query(
        stack, "SELECT heartbeat_ensure_readings_partitions(%s::date[])", [dropped_day, kept_day]
    )
    # The kept day's last second (29 days and a bit old) and the dropped day's last second.
    rows = [(kept_end - timedelta(seconds=1), 0), (kept_end - timedelta(days=1, seconds=1), 1)]
    for at, offset in rows:
        superuser_query(
            stack,
            'INSERT INTO heart_rate_readings (customer_id, "timestamp", heart_rate, kafka_topic,'
            " kafka_partition, kafka_offset) VALUES ('RET', %s, 70, %s, 0, %s)",
            at,
            topic,
            offset,
        )
    try:
        dropped = partitions.drop_older_than(app_db, RAW_DAYS)  # the job's call, its role
        names = {name.removeprefix("public.") for name in dropped}
        assert partition_of(dropped_day) in names and partition_of(kept_day) not in names
        assert not exists(stack, partition_of(dropped_day))
        assert exists(stack, partition_of(kept_day))
        offsets = superuser_query(
            stack, "SELECT kafka_offset FROM heart_rate_readings WHERE kafka_topic = %s", topic
        )
        assert offsets == [(0,)]
    finally:
        superuser_query(stack, "DELETE FROM heart_rate_readings WHERE kafka_topic = %s", topic)


def test_retention_prunes_quarantined_rows_and_metrics_past_their_horizons(stack, job_config):
    topic = f"test-retention-{uuid.uuid4().hex[:8]}"
    query_id = f"retention-{uuid.uuid4().hex[:8]}"
    rejected_ages = {0: RAW_DAYS + 1, 1: RAW_DAYS - 1, 2: 0}  # offset: days old
    metric_ages = {0: METRICS_DAYS + 1, 1: METRICS_DAYS - 1, 2: 0}  # batch id: days old
    for offset, days in rejected_ages.items():
        superuser_query(
            stack,
            "INSERT INTO rejected_readings (raw_value, reason, detail, kafka_topic,"
            " kafka_partition, kafka_offset, ingested_at)"
            " VALUES ('x', 'malformed_json', 'retention', %s, 0, %s,"
            " now() - make_interval(days => %s))",
            topic,
            offset,
            days,
        )
    for batch_id, days in metric_ages.items():
        superuser_query(
            stack,
            "INSERT INTO pipeline_metrics (query_id, query_name, batch_id, run_id, batch_time,"
            " input_rows, batch_duration_ms)"
            " VALUES (%s, 'readings', %s, 'r', now() - make_interval(days => %s), 1, 1)",
            query_id,
            batch_id,
            days,
        )
    try:
        pruned = retention.prune_all(job_config)  # one pass, as the job's timer runs it
        assert pruned["rejected_readings"] >= 1 and pruned["pipeline_metrics"] >= 1
        rejected = superuser_query(
            stack,
            "SELECT kafka_offset FROM rejected_readings WHERE kafka_topic = %s ORDER BY 1",
            topic,
        )
        metrics = superuser_query(
            stack, "SELECT batch_id FROM pipeline_metrics WHERE query_id = %s ORDER BY 1", query_id
        )
        assert rejected == [(1,), (2,)]  # 29 days and fresh kept, 31 days gone
        assert metrics == [(1,), (2,)]  # 13 days and fresh kept, 15 days gone
    finally:
        superuser_query(stack, "DELETE FROM rejected_readings WHERE kafka_topic = %s", topic)
        superuser_query(stack, "DELETE FROM pipeline_metrics WHERE query_id = %s", query_id)


def test_the_job_role_cannot_delete_metrics_younger_than_a_day(stack, app_db):
    query_id = f"guard-{uuid.uuid4().hex[:8]}"
    superuser_query(
        stack,
        "INSERT INTO pipeline_metrics (query_id, query_name, batch_id, run_id, batch_time,"
        " input_rows, batch_duration_ms) VALUES"
        " (%s, 'readings', 0, 'r', now() - interval '23 hours', 1, 1),"
        " (%s, 'readings', 1, 'r', now() - interval '25 hours', 1, 1)",
        query_id,
        query_id,
    )
    delete = "DELETE FROM pipeline_metrics WHERE query_id = %s AND batch_id = %s"
    try:
        with (
            app_db.cursor() as cur,
            pytest.raises(
                psycopg2.errors.InsufficientPrivilege, match="only rows older than 1 day"
            ),
        ):
            cur.execute(delete, (query_id, 0))
        app_db.rollback()
        with app_db, app_db.cursor() as cur:
            cur.execute(delete, (query_id, 1))  # past a day: retention may
            assert cur.rowcount == 1
        remaining = superuser_query(
            stack, "SELECT batch_id FROM pipeline_metrics WHERE query_id = %s", query_id
        )
        assert remaining == [(0,)]
    finally:
        app_db.rollback()  # a failed check must not leave the role's delete holding the rows
        superuser_query(stack, "DELETE FROM pipeline_metrics WHERE query_id = %s", query_id)
