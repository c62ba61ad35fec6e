"""Fixtures for the Superset tests: a Superset of the tests' own, a logged-in REST client, and a
small, self-cleaning set of rows in every table the dashboard reads.

The tests' Superset reads the tests' database (`heartbeat_test`) and keeps its metadata in
`superset`, both in the tests' own PostgreSQL (tests/support/world.py), with the world's
generated secrets, on a free port: the live dashboard (supervisord's `superset`) never shows
test rows, and importing the bundle here never re-points the live dashboard's connection.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

from heartbeat_ops.config import StackConfig
from heartbeat_stream.sinks.rollups import merge_sql
from tests.superset import people
from tests.superset.superset_api import BROWSER_DIR, SupersetClient, SupersetError, serving
from tests.support.notifier import insert_webhook_channel
from tests.support.sockets import free_port
from tests.support.world import World


@dataclass(frozen=True)
class SupersetAdmin:
    url: str
    username: str
    password: str


@pytest.fixture(scope="package")
def superset_env(world: World) -> dict[str, str]:
    """The environment of the tests' Superset (and of `run.sh import` against it): its metadata
    lives in the world's own `superset` database, made by the world's provisioning."""
    port = free_port()
    return {
        **os.environ,
        **world.environment(),  # the world's database, roles and generated secrets
        "SUPERSET_PORT": str(port),
        "SUPERSET_HOME": str(world.root / "superset"),
        "SUPERSET_WORKERS": "1",
        "SUPERSET_BIND_HOST": "127.0.0.1",
    }


@pytest.fixture(scope="package")
def superset(superset_env: dict[str, str], world: World) -> Iterator[SupersetAdmin]:
    """A Superset of the tests' own, started for the Superset tests and stopped after the last of
    them (package scope: in a parallel run their worker goes on with other files)."""
    log_path = world.root / "log" / "superset.log"
    try:
        with serving(superset_env, log_path) as url:
            yield SupersetAdmin(
                url=url,
                username=os.environ.get("SUPERSET_ADMIN_USERNAME", "admin"),
                password=world.secrets["SUPERSET_ADMIN_PASSWORD"],
            )
    except SupersetError as error:
        pytest.fail(f"the tests' Superset did not come up: {error}")


@pytest.fixture(scope="package")
def superset_client(superset: SupersetAdmin) -> SupersetClient:
    return SupersetClient(superset.url, superset.username, superset.password).login()


@pytest.fixture(scope="package")
def viewer(superset: SupersetAdmin, superset_env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """A person with the viewer role, added by `heartbeat-ops superset add-user` (its name and
    the password it printed): the browser tests open every dashboard as this person, the least
    privileged account that must see them all."""
    name, password = people.add_viewer(superset_env)
    yield name, password
    people.superset_command(superset_env, "remove-user", name)


@pytest.fixture(scope="package")
def browser_tooling() -> Path:
    """Debian's chromium and playwright-core, installed by the idempotent script when missing."""
    result = subprocess.run(
        ["bash", str(BROWSER_DIR / "install.sh")], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return BROWSER_DIR / "dashboard.mjs"


@pytest.fixture(scope="package")
def superuser_dsn(stack: StackConfig) -> str:
    return stack.admin_dsn


@dataclass(frozen=True)
class SampleData:
    tag: str  # kafka_topic of the readings, prefix of customer ids and query_name
    customers: list[str]
    readings: int
    minutes: int


@pytest.fixture(scope="package")
def sample_data(superuser_dsn: str) -> Iterator[SampleData]:
    """A little of everything the dashboard shows, in the last 30 minutes, deleted afterwards.

    Written directly as the superuser, no job involved, with the sink's own rollup SQL. Every row
    is tagged (topic, customer prefix, query name) so cleanup is exact.
    """
    tag = f"test-superset-{uuid.uuid4().hex[:10]}"
    customers = [f"{tag}-C{i}" for i in range(3)]
    minutes, per_minute = 30, 6
    conn = psycopg2.connect(superuser_dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                """
                INSERT INTO heart_rate_readings (customer_id, "timestamp", heart_rate,
                                                 kafka_topic, kafka_partition, kafka_offset)
                SELECT c.customer_id,
                       date_trunc('minute', now()) - make_interval(mins => m)
                           + make_interval(secs => 10 * r),
                       60 + ((c.n * 17 + m * 7 + r * 11) %% 90),
                       %(tag)s, c.n, m * 100 + r
                FROM unnest(%(customers)s::text[]) WITH ORDINALITY AS c(customer_id, n),
                     generate_series(1, %(minutes)s) AS m,
                     generate_series(0, %(per_minute)s - 1) AS r
                """,
                {"tag": tag, "customers": customers, "minutes": minutes, "per_minute": per_minute},
            )
            readings = cur.rowcount
            # The rollups of those readings, bins included, as the streaming job writes them.
            cur.execute(
                f"""
                WITH inserted AS (
                    SELECT customer_id, "timestamp", heart_rate FROM heart_rate_readings
                    WHERE kafka_topic = %s
                ) {merge_sql("inserted")}
                """,
                (tag,),
            )
            cur.execute(
                """
                INSERT INTO heart_rate_alerts (sink_id, customer_id, kind, started_at, ended_at,
                                               extreme_bpm, readings, last_reading_at)
                VALUES (%(tag)s, %(c0)s, 'tachycardia', now() - interval '5 minutes', NULL, 171, 12,
                        now() - interval '1 minute'),
                       (%(tag)s, %(c1)s, 'bradycardia', now() - interval '20 minutes',
                        now() - interval '18 minutes', 41, 9, now() - interval '18 minutes')
                """,
                {"tag": tag, "c0": customers[0], "c1": customers[1]},
            )
            # The alert rules' figures (issue 18): a critical episode open, a silent device with
            # the activity that made it silent, and daily resting rates with a baseline.
            cur.execute(
                """
                INSERT INTO heart_rate_alerts (sink_id, customer_id, kind, severity, started_at,
                                               extreme_bpm, readings, last_reading_at,
                                               threshold_bpm)
                VALUES (%(tag)s, %(c1)s, 'critical_low', 'critical', now() - interval '3 minutes',
                        35, 6, now() - interval '2 minutes', 40),
                       (%(tag)s, %(c2)s, 'device_silent', 'warning', now() - interval '10 minutes',
                        NULL, 0, now() - interval '15 minutes', NULL)
                """,
                {"tag": tag, "c1": customers[1], "c2": customers[2]},
            )
            cur.execute(
                """
                INSERT INTO customer_activity (sink_id, customer_id, last_seen_at, silent_since)
                VALUES (%(tag)s, %(c2)s, now() - interval '15 min', now() - interval '10 min')
                """,
                {"tag": tag, "c2": customers[2]},
            )
            # The notifier's figures (issue 19): a webhook channel whose open event for the
            # tachycardia reached nobody.
            channel_id = insert_webhook_channel(cur, f"http://127.0.0.1:9/{tag}")
            cur.execute(
                """
                INSERT INTO notify_deliveries (channel_id, event_id, alert_id, alert_status, kind,
                                               severity, customer_id, outcome, attempts,
                                               http_status, last_error, dead_at)
                SELECT %(channel)s, a.alert_id || ':open:0', a.alert_id, 'open', a.kind,
                       a.severity, a.customer_id, 'dead', 1, 400, 'HTTP 400', now()
                FROM heart_rate_alerts a WHERE a.sink_id = %(tag)s AND a.kind = 'tachycardia'
                """,
                {"channel": channel_id, "tag": tag},
            )
            # ...so that channel is failing (sql/019): its open delivery_failing notice.
            cur.execute(
                """
                INSERT INTO notify_channel_failures (alert_id, channel_id, channel, started_at,
                                                     last_failed_at, dead, last_error)
                VALUES (md5(%(tag)s), %(channel)s, %(channel)s || ' (webhook to http://127.0.0.1)',
                        now() - interval '2 min', now(), 1, 'HTTP 400')
                """,
                {"channel": channel_id, "tag": tag},
            )
            cur.execute(
                """
                INSERT INTO customer_resting_days (customer_id, day, resting_bpm, hours)
                SELECT c.customer_id, (now() AT TIME ZONE 'UTC')::date - d,
                       55 + c.n + (d %% 3), 20
                FROM unnest(%(customers)s::text[]) WITH ORDINALITY AS c(customer_id, n),
                     generate_series(1, 10) AS d
                """,
                {"customers": customers},
            )
            cur.execute(
                """
                INSERT INTO customer_baselines (customer_id, baseline_bpm, days, latest_day,
                                                latest_bpm)
                SELECT r.customer_id,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY r.resting_bpm), count(*),
                       max(r.day), (array_agg(r.resting_bpm ORDER BY r.day DESC))[1]
                FROM customer_resting_days r WHERE r.customer_id = ANY(%(customers)s)
                GROUP BY r.customer_id
                """,
                {"customers": customers},
            )
            cur.execute(
                """
                INSERT INTO rejected_readings (raw_value, reason, detail, kafka_topic,
                                               kafka_partition, kafka_offset, ingested_at)
                SELECT v.raw, v.reason, v.detail, %(tag)s, 0, v.n,
                       now() - make_interval(mins => v.n)
                FROM (VALUES (1, '{"customer_id": "C1"', 'malformed_json', 'unexpected end'),
                             (2, '{"customer_id": "C1"}', 'missing_field', 'heart_rate missing'),
                             (3, '{"customer_id": "C1", "heart_rate": 250}', 'out_of_range',
                              'heart_rate 250 not in [40, 180]'),
                             (4, '{"customer_id": 7}', 'invalid_type', 'customer_id not a string'),
                             (5, '{"timestamp": "yesterday"}', 'invalid_timestamp', 'not ISO-8601'))
                     AS v(n, raw, reason, detail)
                """,
                {"tag": tag},
            )
            cur.execute(
                """
                INSERT INTO pipeline_metrics (query_id, query_name, batch_id, run_id, batch_time,
                                              input_rows, input_rows_per_second,
                                              processed_rows_per_second, batch_duration_ms,
                                              kafka_lag)
                SELECT %(tag)s, 'readings', b, %(tag)s, now() - make_interval(mins => 30 - b),
                       100 + b, 150.0 + b, 900.0 + 10 * b, 120 + (b %% 7) * 10, (30 - b) * 5
                FROM generate_series(0, 29) AS b
                """,
                {"tag": tag},
            )
            # The notifier's figures (one row per interval, query_name 'notifier'): its chart.
            cur.execute(
                """
                INSERT INTO pipeline_metrics (query_id, query_name, batch_id, run_id, batch_time,
                                              input_rows, input_rows_per_second,
                                              processed_rows_per_second, batch_duration_ms,
                                              kafka_lag, details)
                SELECT %(tag)s, 'notifier', 100 + b, %(tag)s, now() - make_interval(mins => 30 - b),
                       b %% 3, (b %% 3) / 10.0, (b %% 3) / 10.0, 10000, b %% 2, '{}'
                FROM generate_series(0, 29) AS b
                """,
                {"tag": tag},
            )
            # A read replica's lag (query_name 'replica', as the notifier records it when the
            # stack has one; the suite's world has none): its chart.
            cur.execute(
                """
                INSERT INTO pipeline_metrics (query_id, query_name, batch_id, run_id, batch_time,
                                              input_rows, batch_duration_ms, replica_lag_bytes,
                                              replica_lag_seconds, details)
                SELECT %(tag)s, 'replica', 200 + b, %(tag)s, now() - make_interval(mins => 30 - b),
                       0, 5, 1000 * (b %% 4), (b %% 4) / 100.0, '{}'
                FROM generate_series(0, 29) AS b
                """,
                {"tag": tag},
            )
    finally:
        conn.close()
    try:
        yield SampleData(tag=tag, customers=customers, readings=readings, minutes=minutes)
    finally:
        _delete_sample_data(superuser_dsn, tag, customers)


def _delete_sample_data(superuser_dsn: str, tag: str, customers: list[str]) -> None:
    """On a connection of its own: a fault test may have restarted PostgreSQL since the insert."""
    conn = psycopg2.connect(superuser_dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM heart_rate_readings WHERE kafka_topic = %s", (tag,))
            cur.execute("DELETE FROM rejected_readings WHERE kafka_topic = %s", (tag,))
            cur.execute("DELETE FROM pipeline_metrics WHERE query_id = %s", (tag,))
            cur.execute("DELETE FROM heart_rate_minute WHERE customer_id = ANY(%s)", (customers,))
            cur.execute("DELETE FROM notify_deliveries WHERE customer_id = ANY(%s)", (customers,))
            cur.execute("DELETE FROM notify_channel_failures WHERE alert_id = md5(%s)", (tag,))
            cur.execute("DELETE FROM notify_channels WHERE target LIKE %s", (f"%/{tag}",))
            cur.execute("DELETE FROM heart_rate_alerts WHERE customer_id = ANY(%s)", (customers,))
            for table in ("customer_activity", "customer_resting_days", "customer_baselines"):
                cur.execute(f"DELETE FROM {table} WHERE customer_id = ANY(%s)", (customers,))
    finally:
        conn.close()
