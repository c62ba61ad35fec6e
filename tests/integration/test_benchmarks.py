"""Benchmarks cannot rot: each benchmark whose smallest configuration takes seconds runs it, on
the tests' own world, and must print its figures; a benchmark broken by a change fails here.

Imported only (tests/unit/test_benchmark_modules.py): alert_latency (at least a minute of load
through the job and the notifier) and superset_queries (needs Superset). stream_job runs its
drain only (a small backlog, no live runs): one Spark job start, the slowest part of this file.
spark_workers is not run here: it builds an image and starts a compose project (minutes).
"""

from __future__ import annotations

import re

import psycopg2
import pytest

from benchmarks import (
    notifier_latency,
    partitioned_insert,
    producer_rate,
    spark_stages,
    stream_job,
)
from benchmarks._job_tree import JobTree, drop_database

pytestmark = pytest.mark.integration


def test_partitioned_insert_smallest(stack, monkeypatch, capsys) -> None:
    monkeypatch.setattr(partitioned_insert, "ROWS", 500)
    monkeypatch.setattr(partitioned_insert, "BATCHES", 2)
    partitioned_insert.run()
    out = capsys.readouterr().out
    assert "batch of 500 as the job runs it" in out and "partition check alone" in out


def test_producer_rate_smallest(stack, monkeypatch, capsys) -> None:
    monkeypatch.setattr(producer_rate, "READINGS", 300)
    producer_rate.run()
    out = capsys.readouterr().out
    assert "x the client" in out and "sent 300, failed 0" in out


def test_notifier_latency_smallest(stack, monkeypatch, capsys) -> None:
    monkeypatch.setattr(notifier_latency, "EVENTS", 10)
    monkeypatch.setattr(notifier_latency, "RATE", 100.0)
    notifier_latency.run()
    out = capsys.readouterr().out
    assert "paced at 100 events/s: 10 events" in out and "burst drained" in out


def test_stream_job_drain_smallest(stack, monkeypatch, capsys) -> None:
    monkeypatch.setattr(stream_job, "BACKLOG", 3000)
    monkeypatch.setattr(stream_job, "NAIVE_SECONDS", 2.0)
    monkeypatch.setattr(stream_job, "LIVE_RATES", ())
    monkeypatch.setattr(stream_job, "BASELINE_REF", "")
    stream_job.run()
    out = capsys.readouterr().out
    assert "streaming job: " in out and "after its first batch" in out
    assert "Spark per batch, p50/p95 ms" in out and "addBatch" in out
    assert "the sink's laps" in out and "commit" in out
    assert "cores in use" in out  # figures, or why a 3,000-message drain gave none


def test_spark_stages_smallest(stack, monkeypatch, capsys) -> None:
    monkeypatch.setattr(spark_stages, "BACKLOG", 2000)
    monkeypatch.setattr(spark_stages, "ROUNDS", 1)
    spark_stages.run()
    out = capsys.readouterr().out
    for stage in ("read", "classify", "stage_write"):  # one round each: one figure in brackets
        assert re.search(rf"one core, {stage}: median [0-9,]+ messages/s \([0-9,]+\)$", out, re.M)
    assert "rollup merge of " in out and "into existing ones" in out


def test_baseline_tree_is_provisioned_by_its_own_migrations(stack) -> None:
    """BENCH_BASELINE_REF's tree (here HEAD) gets a database made by its own sql/."""
    tree = JobTree.of_revision("HEAD")
    database = tree.database(stack, 0)
    tree.provision(database)
    try:
        with psycopg2.connect(database.admin_dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM schema_migrations")
            assert cur.fetchone()[0] == len(list((tree.root / "sql").glob("*.sql")))
    finally:
        drop_database(database)
