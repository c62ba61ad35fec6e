"""tests/support/db.py keeps one connection per process: a lost one is replaced, not reported,
and an error of the statement still reaches the test."""

from __future__ import annotations

import psycopg2
import pytest

from tests.support.db import superuser_query


def _backend(stack) -> int:
    return superuser_query(stack, "SELECT pg_backend_pid()")[0][0]


def test_a_kept_connection_lost_to_postgres_is_replaced(stack):
    kept = _backend(stack)
    assert _backend(stack) == kept  # one connection between queries
    superuser_query(stack, "SELECT pg_terminate_backend(%s)", kept, database="postgres")
    replaced = _backend(stack)
    assert replaced != kept
    with pytest.raises(psycopg2.errors.DivisionByZero):
        superuser_query(stack, "SELECT 1 / 0")
    assert _backend(stack) == replaced  # the statement failed, the connection was kept
