"""The foreachBatch sink: stage the batch over JDBC, then move it in one transaction."""

from __future__ import annotations

import logging
import time

import psycopg2
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .config import JobConfig
from .quarantine_log import QuarantineLog
from .repository import BatchOutcome, move_staged_batch
from .retry import with_retry
from .validation import parse_messages

log = logging.getLogger("heartbeat.sink")


class ExactlyOnceSink:
    """Callable for `foreachBatch`. A replay of the same batch (same batch_id) changes nothing.

    Why two steps: Spark's JDBC writer appends from many tasks without one transaction, and can
    append twice on a task retry. Staging absorbs both; the move dedups by Kafka provenance and
    commits all of the batch or none of it.
    """

    def __init__(self, config: JobConfig, quarantine_log: QuarantineLog | None = None) -> None:
        self.config = config
        self.quarantine_log = quarantine_log or QuarantineLog()

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        staged = parse_messages(batch).select(
            F.lit(self.config.sink_id).alias("sink_id"),
            F.lit(batch_id).cast("long").alias("batch_id"),
            "*",
        )
        outcome = with_retry(
            lambda: self._write(staged, batch_id),
            give_up_after=self.config.sink_retry_seconds,
            what=f"writing batch {batch_id}",
        )
        self.quarantine_log.record(batch_id, outcome)
        log.info(
            "batch %d: %d valid, %d quarantined in %.2fs",
            batch_id,
            outcome.valid,
            outcome.rejected,
            time.monotonic() - started,
        )

    def _write(self, staged: DataFrame, batch_id: int) -> BatchOutcome:
        staged.write.jdbc(
            self.config.jdbc_url,
            "stage_messages",
            mode="append",
            properties=self.config.jdbc_properties,
        )
        conn = psycopg2.connect(**self.config.libpq_params)
        try:
            return move_staged_batch(
                conn, self.config.sink_id, batch_id, self.quarantine_log.wants_samples()
            )
        finally:
            conn.close()
