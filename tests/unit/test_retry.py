"""with_retry retries only what can pass: lost connections, shutdowns, serialization failures."""

from __future__ import annotations

import psycopg2
import psycopg2.errors
import pytest
from kafka.errors import KafkaTimeoutError

from heartbeat_stream.sinks.batch_commit import CheckpointResetError
from heartbeat_stream.sinks.retry import is_transient, with_retry

pytestmark = pytest.mark.unit


class _JavaThrowable:
    """Stands in for a py4j JavaObject: class name, optional SQLSTATE, cause chain."""

    def __init__(self, class_name: str, state: str | None = None, cause=None) -> None:
        self._class_name, self._state, self._cause = class_name, state, cause

    def getClass(self):
        name = self._class_name
        return type("Class", (), {"getName": lambda _self: name})()

    def getSQLState(self):
        if self._state is None:
            raise AttributeError("not an SQLException")
        return self._state

    def getCause(self):
        return self._cause


class FakePy4JJavaError(Exception):
    def __init__(self, throwable: _JavaThrowable) -> None:
        super().__init__("An error occurred while calling o123.jdbc.")
        self.java_exception = throwable


def jdbc_error(state: str) -> FakePy4JJavaError:
    sql = _JavaThrowable("org.postgresql.util.PSQLException", state)
    return FakePy4JJavaError(_JavaThrowable("org.apache.spark.SparkException", cause=sql))


def pg_error(cls: type[psycopg2.Error], code: str | None) -> psycopg2.Error:
    error = cls("boom")
    if code is not None:
        # psycopg2 sets pgcode from the server's answer; tests set the same attribute.
        error = type(cls.__name__, (cls,), {"pgcode": code})("boom")
    return error


@pytest.mark.parametrize("state", ["08001", "08006", "57P01", "57P03", "40001", "40P01"])
def test_jdbc_transient_sqlstates_are_retried(state):
    assert is_transient(jdbc_error(state))


@pytest.mark.parametrize("state", ["42P01", "42501", "23505", "22P02", "XX000"])
def test_jdbc_sql_and_data_errors_are_not(state):
    assert not is_transient(jdbc_error(state))


def test_connection_refused_in_java_chain_is_transient():
    refused = _JavaThrowable("java.net.ConnectException")
    assert is_transient(FakePy4JJavaError(_JavaThrowable("org.x.Wrapper", cause=refused)))


class FakeCapturedException(Exception):
    """Stands in for pyspark's captured AnalysisException: an error condition, and the Java
    throwable kept as `_origin` (not `java_exception`)."""

    def __init__(self, condition: str | None, origin: _JavaThrowable | None = None) -> None:
        super().__init__(f"[{condition}] ...")
        self._condition, self._origin = condition, origin

    def getCondition(self):
        return self._condition


def test_spark_jdbc_connection_failure_is_transient():
    """What Spark 4's JDBC writer raises while PostgreSQL is down (seen in test_faults)."""
    refused = _JavaThrowable("org.postgresql.util.PSQLException", "08001")
    origin = _JavaThrowable("org.apache.spark.sql.AnalysisException", cause=refused)
    assert is_transient(FakeCapturedException("FAILED_JDBC.CONNECTION", origin))
    assert is_transient(FakeCapturedException("FAILED_JDBC.CONNECTION"))  # no chain to read
    assert is_transient(FakeCapturedException(None, origin))  # the chain alone says so
    missing = _JavaThrowable("org.postgresql.util.PSQLException", "42P01")
    not_found = _JavaThrowable("org.apache.spark.sql.AnalysisException", cause=missing)
    assert not is_transient(FakeCapturedException("TABLE_OR_VIEW_NOT_FOUND", not_found))


def test_psycopg2_classification():
    assert is_transient(psycopg2.OperationalError("could not connect to server"))
    assert is_transient(pg_error(psycopg2.errors.AdminShutdown, "57P01"))
    assert is_transient(pg_error(psycopg2.errors.SerializationFailure, "40001"))
    assert not is_transient(pg_error(psycopg2.errors.UndefinedTable, "42P01"))
    assert not is_transient(pg_error(psycopg2.errors.InsufficientPrivilege, "42501"))


def test_checkpoint_reset_and_programming_errors_are_not_transient():
    assert not is_transient(CheckpointResetError("the checkpoint was reset"))
    assert not is_transient(TypeError("bad argument"))
    assert not is_transient(ValueError("bad data"))
    assert is_transient(KafkaTimeoutError("no metadata"))


def test_non_transient_error_fails_at_once():
    calls = []

    def action():
        calls.append(1)
        raise CheckpointResetError("batch 3 was committed before with other messages")

    with pytest.raises(CheckpointResetError):
        with_retry(action, give_up_after=60, first_delay=0.01, what="writing batch 3")
    assert len(calls) == 1


def test_transient_error_is_retried_until_it_passes():
    calls = []

    def action() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise psycopg2.OperationalError("server closed the connection unexpectedly")
        return "written"

    assert with_retry(action, give_up_after=5, first_delay=0.01, max_delay=0.02) == "written"
    assert len(calls) == 3


def test_transient_error_gives_up_after_the_deadline():
    calls = []

    def action():
        calls.append(1)
        raise psycopg2.OperationalError("connection refused")

    with pytest.raises(psycopg2.OperationalError):
        with_retry(action, give_up_after=0.2, first_delay=0.01, max_delay=0.05)
    assert 2 <= len(calls) < 50


def test_a_failed_try_of_the_sink_leaves_no_connection_for_the_next(monkeypatch):
    """After a database restart the sink's long-lived connection looks open but is dead: a try
    of the batch transaction that failed closes it, so the next try connects afresh."""
    from heartbeat_stream.config import JobConfig
    from heartbeat_stream.sinks.readings_sink import ReadingsSink

    sink = ReadingsSink(JobConfig())
    closed: list[bool] = []
    monkeypatch.setattr(sink.database, "close", lambda: closed.append(True))

    def refused(*_args, **_kwargs):
        raise ConnectionError("the database is restarting")

    monkeypatch.setattr(sink.database, "run", refused)
    with pytest.raises(ConnectionError):
        sink._transaction(7)
    assert closed == [True]
