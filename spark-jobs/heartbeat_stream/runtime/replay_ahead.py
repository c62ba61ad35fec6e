"""At a job's start: a batch Spark recorded as done whose transaction never committed is run
again.

With the overlapped commit (sinks/commit_pipeline.py) Spark writes a batch into its commit log
once the batch is staged, while PostgreSQL is still committing it, and never more than one batch
ahead. A job that dies in between leaves Spark's commit log one batch past sink_progress, and
Spark's offset log perhaps one further (the next batch, planned and not done). Removing Spark's
records of both makes Spark run the uncommitted batch again at this start, from its own offset
log: the same offsets and the same batch time, so the same outcome for every message; the next
batch is planned afresh. (Removing only the commit record would not do: Spark re-runs only its
newest planned batch, and would skip the one in between.) Anything else (Spark behind, level, or
more than one batch ahead: a restored database, an operator's edit) is left to the sink, as
before. Rows staged by the dead job for batches PostgreSQL never committed are cleared first.
"""

from __future__ import annotations

import logging

import psycopg2
from pyspark.sql import SparkSession

from ..config import JobConfig
from ..sinks.retry import with_retry

log = logging.getLogger("heartbeat.replay")

_LAST_COMMITTED = "SELECT last_batch_id FROM sink_progress WHERE sink_id = %s"
_CLEAR_UNCOMMITTED = "DELETE FROM stage_messages WHERE sink_id = %s AND batch_id > %s"


def last_committed_batch(config: JobConfig) -> int:
    """The sink's last batch PostgreSQL committed (-1 before its first), after clearing what
    the stage holds of later batches: they were never committed, and are staged again."""
    conn = psycopg2.connect(**config.libpq_params)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(_LAST_COMMITTED, (config.sink_id,))
            row = cur.fetchone()
            committed = -1 if row is None else row[0]
            cur.execute(_CLEAR_UNCOMMITTED, (config.sink_id, committed))
    finally:
        conn.close()
    return committed


def batch_to_run_again(spark_committed: list[int], sink_committed: int) -> int | None:
    """The batch whose record Spark must drop: its newest, exactly one past the sink's."""
    newest = max(spark_committed, default=None)
    return newest if newest is not None and newest == sink_committed + 1 else None


def replay_batch_recorded_ahead(spark: SparkSession, config: JobConfig) -> int | None:
    """Drop Spark's records of a batch PostgreSQL did not commit and of any batch planned after
    it; return the batch's id (None: nothing to do)."""
    jvm = spark.sparkContext._jvm
    checkpoint = jvm.org.apache.hadoop.fs.Path(config.readings_checkpoint)
    files = checkpoint.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def batches(log_name: str) -> list[int]:
        directory = jvm.org.apache.hadoop.fs.Path(checkpoint, log_name)
        if not files.exists(directory):
            return []
        names = [status.getPath().getName() for status in files.listStatus(directory)]
        return [int(name) for name in names if name.isdigit()]

    def remove(log_name: str, batch: int) -> None:
        record = jvm.org.apache.hadoop.fs.Path(jvm.org.apache.hadoop.fs.Path(checkpoint, log_name),
                                               str(batch))  # fmt: skip
        if not files.delete(record, False):
            raise RuntimeError(f"could not delete Spark's record {record}")

    sink_committed = with_retry(
        lambda: last_committed_batch(config),
        give_up_after=config.sink_retry_seconds,
        what="reading the sink's last committed batch",
    )
    batch = batch_to_run_again(batches("commits"), sink_committed)
    if batch is None:
        return None
    planned = sorted(later for later in batches("offsets") if later > batch)
    for later in reversed(planned):  # newest first: the log never has a gap
        remove("offsets", later)
    remove("commits", batch)
    log.warning(
        "batch %d is in Spark's commit log but PostgreSQL committed only up to batch %d (the"
        " job stopped while its commit was in flight): Spark runs batch %d again%s",
        batch, sink_committed, batch,
        f", and plans batch {batch + 1} afresh" if planned else "",
    )  # fmt: skip
    return batch
