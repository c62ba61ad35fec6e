"""Hold the job's batch transaction open at a known point, so a test can SIGKILL the job while
that transaction is verifiably open (not before it began, not after it committed).

The test takes `LOCK TABLE rejected_readings IN SHARE MODE` on its own connection. The batch
transaction (sinks/batch_commit.py) then stops at its INSERT into rejected_readings, after it has
moved the valid rows and merged their rollups, uncommitted; staging into stage_messages (JDBC)
is not blocked. PostgreSQL itself reports the wait: the sink's backend (application_name
heartbeat-stream, the batch statement, not retention's DELETE or the metrics connection) waits
for a lock on rejected_readings that this connection holds, inside a transaction that has
already written.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg2

from tests.support.stream_job import wait_for

_HELD_BATCH = """
SELECT a.pid, a.xact_start, a.backend_xid IS NOT NULL AS wrote,
       ARRAY(SELECT DISTINCT l.relation::regclass::text FROM pg_locks l
             WHERE l.pid = a.pid AND l.granted AND l.mode = 'RowExclusiveLock'
               AND l.relation IS NOT NULL) AS writing
FROM pg_stat_activity a
WHERE a.application_name = 'heartbeat-stream' AND a.datname = current_database()
  AND a.state = 'active' AND a.wait_event_type = 'Lock' AND a.xact_start IS NOT NULL
  AND a.query LIKE '%%INSERT INTO rejected_readings%%'
  AND %(holder)s = ANY(pg_blocking_pids(a.pid))
  AND EXISTS (SELECT 1 FROM pg_locks w WHERE w.pid = a.pid AND NOT w.granted
              AND w.relation = 'rejected_readings'::regclass)
"""

_BACKEND = "SELECT xact_start, wait_event_type FROM pg_stat_activity WHERE pid = %s"


@dataclass(frozen=True)
class HeldBatch:
    """The sink's backend, stopped inside its open batch transaction."""

    pid: int
    xact_start: datetime
    wrote: bool  # the transaction has an id: it has written rows already
    writing: list[str]  # tables it holds write locks on (the readings' partitions, rollups)


class BatchHold:
    """Blocks the job's next batch transaction at its INSERT into rejected_readings."""

    def __init__(self, stack) -> None:
        self.dsn = stack.admin_dsn
        self._holder = psycopg2.connect(self.dsn)
        self._observer = psycopg2.connect(self.dsn)
        self._observer.autocommit = True
        with self._observer.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
        with self._holder.cursor() as cur:  # psycopg2 opens the transaction the lock lives in
            cur.execute("SELECT pg_backend_pid()")
            self.holder_pid = cur.fetchone()[0]
            cur.execute("LOCK TABLE rejected_readings IN SHARE MODE")

    def held_batch(self) -> HeldBatch | None:
        with self._observer.cursor() as cur:
            cur.execute(_HELD_BATCH, {"holder": self.holder_pid})
            row = cur.fetchone()
        return HeldBatch(*row) if row else None

    def wait_for_held_batch(self, timeout: float) -> HeldBatch:
        wait_for(lambda: self.held_batch() is not None, timeout,
                 "the job's batch transaction to wait on the held lock", poll=0.05)  # fmt: skip
        held = self.held_batch()
        assert held is not None
        return held

    def wait_until_spark_is_ahead(
        self, checkpoint: str | Path, sink_id: str, timeout: float
    ) -> tuple[HeldBatch, int]:
        """Wait for the next batch transaction to be held, then until Spark has recorded that
        batch as done in its commit log: the overlapped commit's window (staged, handed to the
        commit thread, not committed). Returns the held backend and the batch."""
        held = self.wait_for_held_batch(timeout)
        with self._observer.cursor() as cur:
            cur.execute("SELECT last_batch_id FROM sink_progress WHERE sink_id = %s", (sink_id,))
            (committed,) = cur.fetchone()
        ahead = committed + 1
        record = Path(checkpoint) / "readings" / "commits" / str(ahead)
        wait_for(record.exists, timeout, f"Spark to record batch {ahead} as done", poll=0.02)
        return held, ahead

    def still_open(self, held: HeldBatch) -> bool:
        """The held backend is still in the same transaction, still waiting on the lock."""
        with self._observer.cursor() as cur:
            cur.execute(_BACKEND, (held.pid,))
            row = cur.fetchone()
        return row == (held.xact_start, "Lock")

    def backend_gone(self, pid: int) -> bool:
        with self._observer.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
            return cur.fetchone()[0] == 0

    def release(self) -> None:
        """End the hold (idempotent): the blocked statement proceeds or its backend aborts."""
        if not self._holder.closed:
            # Its server may have gone (a crash test): the lock went with it.
            with contextlib.suppress(psycopg2.Error):
                self._holder.rollback()
            self._holder.close()

    def close(self) -> None:
        self.release()
        if not self._observer.closed:
            self._observer.close()

    def __enter__(self) -> BatchHold:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _kill_while_held(hold: BatchHold, held: HeldBatch, job) -> None:
    """SIGKILL the job, assert its held transaction was still open at the kill, release; the
    transaction never commits."""
    job.kill()
    # After the kill the backend cannot commit (its client is gone); it is still where the kill
    # found it, in the same open transaction, until the lock is released.
    assert hold.still_open(held), "the batch transaction ended before the kill"
    hold.release()
    wait_for(lambda: hold.backend_gone(held.pid), 60, "the killed job's backend to end")


def kill_inside_the_batch_transaction(stack, job, timeout: float = 180.0) -> HeldBatch:
    """Hold the next batch inside its transaction, assert it is there, SIGKILL the job there."""
    with BatchHold(stack) as hold:
        held = hold.wait_for_held_batch(timeout)
        assert held.wrote, f"the held batch transaction has not written yet: {held}"
        assert any(t.startswith("heart_rate_readings") for t in held.writing), held
        assert hold.still_open(held)
        _kill_while_held(hold, held, job)
    return held


def kill_while_spark_is_a_batch_ahead(
    stack, job, checkpoint: str | Path, sink_id: str, timeout: float = 180.0
) -> int:
    """SIGKILL the job while Spark is a batch ahead of PostgreSQL (wait_until_spark_is_ahead),
    the held transaction still open; returns the batch."""
    with BatchHold(stack) as hold:
        held, ahead = hold.wait_until_spark_is_ahead(checkpoint, sink_id, timeout)
        _kill_while_held(hold, held, job)
    return ahead
