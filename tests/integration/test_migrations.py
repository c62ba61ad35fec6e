"""Migrations are append-only (ops/heartbeat_ops/migrate.py): an applied migration whose file was
edited is refused, and nothing after it is applied. Against a scratch database of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

from heartbeat_ops import migrate

pytestmark = pytest.mark.integration


@pytest.fixture
def scratch_dsn(stack) -> Iterator[str]:
    """A database created for this test and dropped after it."""
    name = f"heartbeat_scratch_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(stack.superuser_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield stack.dsn(user=stack.pg_superuser, password=stack.pg_superuser_password,
                        database=name)  # fmt: skip
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


def tables(dsn: str) -> list[str]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            " ORDER BY 1"
        )
        return [name for (name,) in cur.fetchall()]


def test_an_edited_applied_migration_is_refused(scratch_dsn, tmp_path: Path):
    first = tmp_path / "001_first.sql"
    first.write_text("CREATE TABLE first_table (x int);\n")
    assert [m.name for m in migrate.apply_all(scratch_dsn, tmp_path)] == ["first"]
    assert migrate.apply_all(scratch_dsn, tmp_path) == []  # unchanged: nothing to do

    first.write_text("CREATE TABLE first_table (x int, y int);\n")  # edited after it ran
    (tmp_path / "002_second.sql").write_text("CREATE TABLE second_table (x int);\n")
    with pytest.raises(RuntimeError, match=r"001_first\.sql changed after it was applied"):
        migrate.apply_all(scratch_dsn, tmp_path)
    assert tables(scratch_dsn) == ["first_table", "schema_migrations"]  # 002 not applied

    first.write_text("CREATE TABLE first_table (x int);\n")  # put back: the history goes on
    assert [m.name for m in migrate.apply_all(scratch_dsn, tmp_path)] == ["second"]
