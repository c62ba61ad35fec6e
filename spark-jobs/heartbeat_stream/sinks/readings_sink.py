"""The foreachBatch sink: each message lands exactly once, as a reading or quarantined, and the
minute rollups and alert state advance from the same classified batch.

Per batch: one Spark job (read, parse and classify the batch as the stream's plan says, and
append it over JDBC into the UNLOGGED stage, its connections naming the batch's key), then one
transaction on the driver's connection (batch_commit.commit_batch), then the alert outbox; the
transaction and the outbox run on the commit thread while Spark stages the next batch
(commit_pipeline). Why a stage: Spark's JDBC writer appends from many tasks without one
transaction, and can append twice on a task retry; the transaction moves the batch, merges
rollups, advances alert state and records the batch id atomically, so a replay changes nothing.
"""

from __future__ import annotations

import logging
import re
import time

from kafka.errors import KafkaError
from pyspark.sql import DataFrame

from ..config import JobConfig
from . import stage_sentinel
from .alert_outbox import OutboxPublisher
from .batch_commit import BatchOutcome, commit_batch
from .commit_pipeline import CommitPipeline
from .database import Database
from .quarantine_log import QuarantineLog
from .retry import with_retry

log = logging.getLogger("heartbeat.sink")

# While the alerts topic is out of reach, batches try to publish again at most this often.
PUBLISH_RETRY_PAUSE_SECONDS = 10.0


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


_SINK_ID = re.compile(r"[0-9A-Za-z_-]+")


def stage_key_options(sink_id: str, batch_id: int) -> str:
    """PostgreSQL startup options naming the batch whose rows a connection stages: the stage's
    sink_id and batch_id columns default to these two settings (sql/016).

    Why not columns of the rows: a batch id as a literal is compiled into the stage's generated
    code, so every batch compiled the whole classifier again; joined from a one-row broadcast,
    it cost every micro-batch a Spark job of its own. As a connection option it is neither.
    """
    if not _SINK_ID.fullmatch(sink_id):  # a space would end the option's value
        raise ValueError(f"a sink id is letters, digits, '_' and '-', not {sink_id!r}")
    return f"-c heartbeat.stage_sink_id={sink_id} -c heartbeat.stage_batch_id={int(batch_id)}"


def append_to_stage(messages: DataFrame, config: JobConfig, batch_id: int, writers: int) -> None:
    """The classified batch into stage_messages over JDBC, from at most `writers` tasks, each
    connection naming the batch (Spark hands JDBC properties it does not know to the driver)."""
    messages.write.jdbc(
        config.jdbc_url,
        "stage_messages",
        mode="append",
        properties={
            **config.jdbc_properties,
            "numPartitions": str(writers),
            "options": stage_key_options(config.sink_id, batch_id),
        },
    )


def _note(outcome: BatchOutcome) -> str:
    """What the batch log line adds about a batch that was not simply new."""
    if outcome.replayed:
        return " (replay)"
    return " (rows already stored were skipped)" if outcome.met_stored else ""


class ReadingsSink:
    """Callable for `foreachBatch`: stages the batch, then hands its commit to the pipeline."""

    def __init__(
        self,
        config: JobConfig,
        quarantine_log: QuarantineLog | None = None,
        publisher: OutboxPublisher | None = None,
    ) -> None:
        self.config = config
        self.quarantine_log = quarantine_log or QuarantineLog()
        self.database = Database(config.libpq_params)
        # The job's main passes the publisher it shares with the silence and baseline threads.
        self.publisher = publisher or OutboxPublisher.for_job(config)
        self.commits = CommitPipeline(overlap=config.overlap_commit)
        self._stage_token: str | None = None
        self._jdbc_writers: int | None = None
        self._publish_failed_at: float | None = None  # monotonic; None while publishing works

    def __call__(self, messages: DataFrame, batch_id: int) -> None:
        clock = _Stopwatch()
        if self._stage_token is None:  # before this job stages anything (stage_sentinel)
            sink_id = self.config.sink_id
            self._stage_token = with_retry(
                lambda: self.database.run(lambda conn: stage_sentinel.mark(conn, sink_id)),
                give_up_after=self.config.sink_retry_seconds,
                what="marking the stage",
            )
        with_retry(
            lambda: append_to_stage(messages, self.config, batch_id, self._writers(messages)),
            give_up_after=self.config.sink_retry_seconds,
            what=f"staging batch {batch_id}",
        )
        clock.lap("stage")
        self.commits.submit(lambda: self._commit(batch_id, clock))

    def close(self) -> None:
        """Wait for the commit in flight (the job is stopping)."""
        self.commits.close()

    def _commit(self, batch_id: int, clock: _Stopwatch) -> None:
        """On the commit thread: the batch's transaction, its quarantine log and alerts."""
        clock.lap("wait")  # for the previous batch's commit
        outcome = with_retry(
            lambda: self._transaction(batch_id),
            give_up_after=self.config.sink_retry_seconds,
            what=f"committing batch {batch_id}",
        )
        clock.lap("commit")
        self.quarantine_log.record(batch_id, outcome)
        published = self._publish()
        clock.lap("publish")
        log.info(
            "batch %d: %d valid, %d quarantined, %d minutes merged, %d episode changes, %s%s (%s)",
            batch_id,
            outcome.valid,
            outcome.rejected,
            outcome.minutes_merged,
            outcome.episodes_changed,
            "alerts left in the outbox" if published is None else f"{published} alerts published",
            _note(outcome),
            clock,
        )

    def _publish(self) -> int | None:
        """Publish the outbox after the batch's commit: how many events, or None when Kafka
        refused. By now the batch's readings and events are committed, so a failure here loses
        nothing: the events wait in the outbox and go out with the next publish of any thread.
        The batch completes, so an alerts topic out of reach (missing, its ACL, its replicas)
        holds back only the alerts, never the readings or the dashboards' alert tables, which
        read PostgreSQL. (The batch used to fail after the retry budget, and the job exited at
        every start.) The budget is spent only while publishing works; once it fails, a batch
        tries once, at most every PUBLISH_RETRY_PAUSE_SECONDS, and leaves its events between
        tries to the silence check's timer, which publishes while the publisher is behind."""
        failing_since = self._publish_failed_at
        if (
            failing_since is not None
            and time.monotonic() - failing_since < PUBLISH_RETRY_PAUSE_SECONDS
        ):
            self.publisher.publish_later()
            return None
        try:
            published = with_retry(
                self.publisher.publish,
                give_up_after=self.config.sink_retry_seconds if failing_since is None else 0.0,
                what="publishing alerts",
            )
        except KafkaError as error:
            log.error("publishing alerts failed (%s: %s): the events wait in the outbox and go"
                      " out with the next publish; readings keep landing", type(error).__name__,
                      str(error)[:300])  # fmt: skip
            self._publish_failed_at = time.monotonic()
            return None
        if failing_since is not None:
            log.warning("publishing alerts works again: %d events published", published)
        self._publish_failed_at = None
        return published

    def _transaction(self, batch_id: int) -> BatchOutcome:
        """The staged batch's one transaction. A try that fails drops the connection: after a
        database restart it looks open but is dead, and the next try would spend itself finding
        that out (seen: the last try of a 60 s budget lost so)."""
        try:
            return self.database.run(
                lambda conn: commit_batch(
                    conn,
                    self.config.sink_id,
                    batch_id,
                    self.config.alert_rules,
                    self.quarantine_log.wants_samples(),
                    stage_token=self._stage_token,
                )
            )
        except Exception:
            self.database.close()
            raise

    def _writers(self, messages: DataFrame) -> int:
        """How many tasks append to the stage at most: as many as Spark has cores, so that three
        Kafka partitions on two cores do not run as two rounds of tasks (nor open a database
        connection each for a small batch)."""
        if self._jdbc_writers is None:
            default = messages.sparkSession.sparkContext.defaultParallelism
            self._jdbc_writers = self.config.jdbc_writers or default
        return self._jdbc_writers
