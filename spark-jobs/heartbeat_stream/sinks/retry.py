"""Retry with exponential back-off, only for errors that can pass within one batch.

Retrying is safe here because a micro-batch write is idempotent; it is useful only when the
error is transient (the database restarting, a lost connection, a serialization conflict). A
programming or data error would fail the same way for a minute, so it fails the batch at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TypeVar

import psycopg2
import psycopg2.errorcodes
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

# SQLSTATEs that mean "try again": connection exceptions (class 08), the server shutting down
# (57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now), serialization
# failure (40001) and deadlock (40P01). Everything else (syntax, privileges, constraints, data)
# would fail identically on every attempt.
TRANSIENT_SQLSTATE_CLASSES = ("08",)
TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "40001", "40P01"})

_JAVA_TRANSIENT_CLASSES = (
    "java.net.ConnectException",
    "java.net.SocketException",
    "java.net.SocketTimeoutException",
    "java.io.EOFException",
)


def transient_sqlstate(state: str | None) -> bool:
    return bool(state) and (
        state.startswith(TRANSIENT_SQLSTATE_CLASSES) or state in TRANSIENT_SQLSTATES
    )


# Spark's own error conditions for "the database could not be reached": Spark 4 wraps the JDBC
# driver's refused connection in an AnalysisException [FAILED_JDBC.CONNECTION] (SQLSTATE HV000),
# which reaches Python as pyspark's captured exception, not as a Py4JJavaError.
TRANSIENT_SPARK_CONDITIONS = frozenset({"FAILED_JDBC.CONNECTION"})


def _spark_condition(error: BaseException) -> str | None:
    """The error condition of a pyspark exception (e.g. FAILED_JDBC.CONNECTION), if any."""
    get_condition = getattr(error, "getCondition", None)
    if get_condition is None:
        return None
    try:
        return get_condition()
    except Exception:  # no JVM to ask, or not a Spark error
        return None


def _java_causes(error: BaseException) -> Iterator[object]:
    """The Java throwable chain of a py4j Py4JJavaError or of pyspark's captured exceptions
    (AnalysisException and the like keep it as `_origin`); empty for other errors."""
    throwable = getattr(error, "java_exception", None)
    if throwable is None:
        throwable = getattr(error, "_origin", None)
    seen = 0
    while throwable is not None and seen < 20:  # a cause chain can, in theory, loop
        yield throwable
        throwable = throwable.getCause()
        seen += 1


def _java_transient(throwable: object) -> bool:
    class_name = throwable.getClass().getName()
    if class_name in _JAVA_TRANSIENT_CLASSES:
        return True
    get_state = getattr(throwable, "getSQLState", None)
    try:
        return transient_sqlstate(get_state()) if get_state is not None else False
    except Exception:  # not a java.sql.SQLException: py4j raises for the unknown method
        return False


def is_transient(error: BaseException) -> bool:
    """True for errors worth retrying: lost/refused connections, shutdowns, serialization."""
    # CheckpointResetError (a RuntimeError) and every SQL/data/programming error fall through
    # to False.
    if isinstance(error, psycopg2.Error):
        if error.pgcode is not None:
            return transient_sqlstate(error.pgcode)
        # No SQLSTATE: libpq could not connect or lost the connection.
        return isinstance(error, psycopg2.OperationalError | psycopg2.InterfaceError)
    if _is_kafka_retriable(error):
        return True
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    if _spark_condition(error) in TRANSIENT_SPARK_CONDITIONS:
        return True
    return any(_java_transient(cause) for cause in _java_causes(error))


def _is_kafka_retriable(error: BaseException) -> bool:
    try:
        from kafka.errors import KafkaError
    except ImportError:  # pragma: no cover - kafka-python is a dependency of the job
        return False
    return isinstance(error, KafkaError) and bool(getattr(error, "retriable", False))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


def with_retry(
    action: Callable[[], T],
    *,
    give_up_after: float,
    first_delay: float = 1.0,
    max_delay: float = 15.0,
    what: str = "operation",
) -> T:
    """Run `action`; retry transient errors for up to `give_up_after` seconds, then re-raise.

    Any other error is raised at once. Only safe for idempotent actions: here, writing a
    micro-batch that may be written twice.
    """

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s failed (attempt %d, transient), retrying in %.0fs: %s",
            what,
            state.attempt_number,
            state.next_action.sleep if state.next_action else 0.0,
            _first_line(error) if error else "",
        )

    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_delay(give_up_after),
        wait=wait_exponential(multiplier=first_delay, min=first_delay, max=max_delay),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(action)
    except Exception as error:
        attempts = retrying.statistics.get("attempt_number", 1)
        if is_transient(error):
            log.error("%s failed after %d attempts; giving up: %s", what, attempts,
                      _first_line(error))  # fmt: skip
        else:
            log.error("%s failed with a non-transient error, not retrying: %s", what,
                      _first_line(error))  # fmt: skip
        raise
