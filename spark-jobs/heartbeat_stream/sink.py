"""foreachBatch sinks. Readings: stage over JDBC, then commit in one transaction (with alert
state). Rollups: upsert each window's current aggregate."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from contextlib import closing
from datetime import UTC, datetime

import psycopg2
from kafka import KafkaProducer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from . import alert_store
from .alert_outbox import publish_pending
from .config import JobConfig
from .episodes import Run, reading_runs
from .quarantine_log import QuarantineLog
from .repository import BatchOutcome, commit_batch
from .retry import with_retry
from .rollup_store import upsert_rollups
from .rollups import ROLLUP_COLUMNS, valid_readings
from .validation import parse_messages

log = logging.getLogger("heartbeat.sink")


class _Stopwatch:
    """Where a batch's time went, for the log line."""

    def __init__(self) -> None:
        self.last = self.start = time.monotonic()
        self.laps: list[str] = []

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps.append(f"{name} {now - self.last:.2f}s")
        self.last = now

    def __str__(self) -> str:
        return ", ".join([*self.laps, f"total {time.monotonic() - self.start:.2f}s"])


def _aware(moment: datetime) -> datetime:
    """PySpark hands timestamps back as naive local time; PostgreSQL's are aware."""
    return moment.astimezone(UTC)


def _connect(config: JobConfig) -> closing[psycopg2.extensions.connection]:
    """A fresh connection per use, closed after: a batch must not inherit a broken one."""
    return closing(psycopg2.connect(**config.libpq_params))


class ReadingsSink:
    """Callable for `foreachBatch`: every message lands once, as a reading or quarantined.

    Why two steps: Spark's JDBC writer appends from many tasks without one transaction, and can
    append twice on a task retry. The staging table absorbs both; commit_batch moves the batch,
    advances alert state and records the batch id atomically, so a replay changes nothing.
    """

    def __init__(self, config: JobConfig, quarantine_log: QuarantineLog | None = None) -> None:
        self.config = config
        self.quarantine_log = quarantine_log or QuarantineLog()
        self._producer: KafkaProducer | None = None

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        clock = _Stopwatch()
        parsed = parse_messages(batch).persist()
        try:
            runs = self._runs(parsed)
            clock.lap("runs")
            outcome = with_retry(
                lambda: self._write(parsed, batch_id, runs),
                give_up_after=self.config.sink_retry_seconds,
                what=f"writing batch {batch_id}",
            )
            clock.lap("write")
        finally:
            parsed.unpersist()
        self.quarantine_log.record(batch_id, outcome)
        published = with_retry(
            self._publish_alerts,
            give_up_after=self.config.sink_retry_seconds,
            what="publishing alerts",
        )
        clock.lap("publish")
        log.info(
            "batch %d: %d valid, %d quarantined, %d episode changes, %d alerts published%s (%s)",
            batch_id,
            outcome.valid,
            outcome.rejected,
            outcome.episodes_changed,
            published,
            " (replay)" if outcome.replayed else "",
            clock,
        )

    def _runs(self, parsed: DataFrame) -> dict[str, list[Run]]:
        """This batch's runs per customer, in event-time order (a few rows per customer)."""
        by_customer: dict[str, list[Run]] = defaultdict(list)
        runs = reading_runs(valid_readings(parsed), self.config.thresholds)
        for row in runs.orderBy("customer_id", "run").collect():
            by_customer[row.customer_id].append(
                Run(
                    row.kind,
                    _aware(row.started_at),
                    _aware(row.last_reading_at),
                    row.extreme_bpm,
                    row.readings,
                )
            )
        return by_customer

    def _write(self, parsed: DataFrame, batch_id: int, runs: dict[str, list[Run]]) -> BatchOutcome:
        staged = parsed.select(
            F.lit(self.config.sink_id).alias("sink_id"),
            F.lit(batch_id).cast("long").alias("batch_id"),
            "*",
        )
        staged.write.jdbc(
            self.config.jdbc_url,
            "stage_messages",
            mode="append",
            properties=self.config.jdbc_properties,
        )
        with _connect(self.config) as conn:
            return commit_batch(
                conn,
                self.config.sink_id,
                batch_id,
                self.quarantine_log.wants_samples(),
                side_effects=lambda cur: alert_store.apply_runs(
                    cur, self.config.sink_id, runs, self.config.thresholds
                ),
            )

    def _publish_alerts(self) -> int:
        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self.config.kafka_bootstrap_servers, acks="all", retries=5
            )
        with _connect(self.config) as conn:
            return publish_pending(
                conn, self._producer, self.config.alerts_topic, self.config.sink_id
            )


class RollupSink:
    """Callable for `foreachBatch` on the rollup query (output mode "update")."""

    def __init__(self, config: JobConfig) -> None:
        self.config = config

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        rows = [tuple(row) for row in batch.select(*ROLLUP_COLUMNS).collect()]

        def write() -> int:
            with _connect(self.config) as conn:
                return upsert_rollups(conn, rows)

        written = with_retry(
            write,
            give_up_after=self.config.sink_retry_seconds,
            what=f"writing rollups of batch {batch_id}",
        )
        log.info("rollup batch %d: %d minute rows upserted", batch_id, written)
