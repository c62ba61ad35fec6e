"""Shared fixtures: the real stack started by `make infra`, fresh topics, a real Spark session.

Tests never touch the live `heartbeat` database: the session creates and migrates a database of
its own (HEARTBEAT_TEST_DATABASE, default `heartbeat_test`) with the same roles, so a running
dashboard never shows test rows and no test depends on the live stack's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from heartbeat_ops import database
from heartbeat_ops.config import StackConfig, load, scrub_ambient_libpq, var_dir

TEST_DATABASE = os.environ.get("HEARTBEAT_TEST_DATABASE") or "heartbeat_test"


@pytest.fixture(scope="session")
def live_stack() -> StackConfig:
    """The running stack's configuration (env first, then var/secrets.env), live database."""
    scrub_ambient_libpq()  # as heartbeat-ops does: a psql user's PGUSER must not leak in
    return load()


@pytest.fixture(scope="session")
def stack(live_stack: StackConfig) -> StackConfig:
    """The stack, pointed at the tests' own database: created and migrated once per session."""
    assert live_stack.pg_database != TEST_DATABASE, "the test database must not be the live one"
    config = live_stack.model_copy(update={"pg_database": TEST_DATABASE})
    database.bootstrap(config)
    return config


@pytest.fixture(scope="session")
def spark_jars() -> list[str]:
    jars = sorted(str(p) for p in (var_dir() / "jars" / "spark").glob("*.jar"))
    assert jars, "connector jars missing: run `make install`"
    return jars


@pytest.fixture(scope="session")
def spark(spark_jars: list[str]):
    """One local Spark session for the whole run, with the Kafka connector and JDBC driver."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("heartbeat-tests")
        .config("spark.jars", ",".join(spark_jars))
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("WARN")
    yield session
    session.stop()


@pytest.fixture
def fresh_topic(stack: StackConfig) -> Iterator[str]:
    """A new 3-partition topic per test, deleted afterwards, so tests never see each other."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap_servers)
    admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
    try:
        yield name
    finally:
        admin.delete_topics([name])
        admin.close()


@pytest.fixture
def app_db(stack: StackConfig) -> Iterator[psycopg2.extensions.connection]:
    """A connection as the job's least-privilege role (HEARTBEAT_APP_USER)."""
    conn = psycopg2.connect(stack.app_dsn)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def tmp_checkpoint(tmp_path: Path) -> str:
    return str(tmp_path / "checkpoint")


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the reliability figures (recovery times, ledger results) the tests measured."""
    from tests.support.figures import FIGURES

    if FIGURES:
        terminalreporter.section("reliability figures")
        for entry in FIGURES:
            values = ", ".join(f"{k}={v}" for k, v in entry.items() if k not in ("test", "at"))
            terminalreporter.write_line(f"{entry['test']}: {values}")
