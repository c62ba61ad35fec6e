"""Alert lifecycle events through a transactional outbox: recorded in the transaction that
changed the episode (`record`, `record_resolved`), published to the alerts topic after it
commits (`OutboxPublisher.publish`), at least once.

An event is marked published only after Kafka acked it, so a crash in between republishes it
with the next publish rather than losing it. A crash after the ack but before the mark sends it
again, byte-identical: consumers deduplicate by its `event_id`.

The job has one publisher, shared by the sink (after each batch), the silence check and the
baseline pass: one KafkaProducer, one connection, and one lock so two of them never read and
send the same pending rows at once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from kafka import KafkaProducer
from psycopg2.extensions import connection, cursor

from heartbeat_contract.alerts import RESOLVED, alert_event, encode_event
from heartbeat_contract.kafka_security import JOB, kafka_client_args

from .database import Database

if TYPE_CHECKING:
    from ..config import JobConfig

_RECORD = """
INSERT INTO alert_events (sink_id, event_id, alert_id, status, revision, customer_id, payload)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (event_id) DO NOTHING
"""

_PENDING = """
SELECT id, customer_id, payload
FROM alert_events
WHERE sink_id = %s AND published_at IS NULL
ORDER BY id
LIMIT 1000
"""


class EpisodeFigures(NamedTuple):
    """An episode row's figures, in the order the callers' RETURNING clauses give them."""

    started_at: datetime
    ended_at: datetime | None
    last_reading_at: datetime
    readings: int
    revision: int
    extreme_bpm: int | None = None
    threshold_bpm: float | None = None
    baseline_bpm: float | None = None


def record(cur: cursor, sink_id: str, event: Mapping[str, object]) -> None:
    """Add one event (heartbeat_contract.alerts.alert_event) to the outbox; an event already
    recorded (a replay) is left as it is."""
    _, payload = encode_event(event)
    cur.execute(
        _RECORD,
        (
            sink_id,
            event["event_id"],
            event["alert_id"],
            event["status"],
            event["revision"],
            event["customer_id"],
            payload.decode(),
        ),
    )


def episode_event(customer: str, kind: str, status: str, row: Sequence) -> dict[str, object]:
    """The event of an episode row: `row` holds EpisodeFigures' fields, in order (the last
    three may be left off)."""
    figures = EpisodeFigures(*row)
    return alert_event(customer_id=customer, kind=kind, status=status, **figures._asdict())


def record_resolved(
    cur: cursor, sink_id: str, customer: str, kind: str, row: Sequence
) -> dict[str, object]:
    """Record the `resolved` event of an episode that just ended (`row`: EpisodeFigures'
    fields, in order) and return it. The caller leaves muted episodes out."""
    event = episode_event(customer, kind, RESOLVED, row)
    record(cur, sink_id, event)
    return event


def publish_pending(conn: connection, producer: KafkaProducer, topic: str, sink_id: str) -> int:
    """Send unpublished events in order, wait for acks, then mark them; returns how many.
    Not safe to run twice at once for one sink: the job goes through OutboxPublisher."""
    with conn, conn.cursor() as cur:
        cur.execute(_PENDING, (sink_id,))
        pending = cur.fetchall()
        if not pending:
            return 0
        futures = [
            producer.send(topic, key=customer.encode(), value=payload.encode())
            for _, customer, payload in pending
        ]
        producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises if any send failed: nothing gets marked
        cur.execute(
            "UPDATE alert_events SET published_at = now() WHERE id = ANY(%s)",
            ([row[0] for row in pending],),
        )
    return len(pending)


class OutboxPublisher:
    """The job's one publisher of a sink's outbox, made by the job's main and handed to the
    sink, the silence check and the baseline pass. Thread-safe: one publish at a time."""

    def __init__(
        self,
        libpq_params: dict[str, object],
        kafka_args: dict[str, str],
        topic: str,
        sink_id: str,
        producer: KafkaProducer | None = None,
    ) -> None:
        self.topic = topic
        self.sink_id = sink_id
        self._kafka_args = kafka_args  # where the broker is and who the job is there
        self._database = Database(libpq_params)
        self._producer = producer
        self._owns_producer = producer is None
        self._lock = threading.Lock()
        # Events may wait (`behind`): the last publish failed, or a caller left its events for
        # later since the last publish began. The silence check's timer then publishes every
        # round, so they go out once Kafka takes them, whether or not readings arrive.
        self._failed = False
        self._left = 0  # publish_later calls so far
        self._left_covered = 0  # of them, the ones made before the last good publish began

    @classmethod
    def for_job(cls, config: JobConfig, producer: KafkaProducer | None = None) -> OutboxPublisher:
        """The publisher of a job's outbox (heartbeat_stream.config.JobConfig)."""
        return cls(
            config.libpq_params,
            kafka_client_args(config, JOB),
            config.kafka_alerts_topic,
            config.sink_id,
            producer,
        )

    def publish(self) -> int:
        """Publish every pending event (in pages of 1,000 until none is left); returns how many.
        Raises on a Kafka or PostgreSQL error, leaving the unsent rows pending."""
        with self._lock:
            if self._producer is None:
                # max_block_ms: a missing alerts topic fails a try in 10 s, not 60.
                self._producer = KafkaProducer(
                    **self._kafka_args, acks="all", retries=5, max_block_ms=10_000
                )
            total = 0
            left, self._failed = self._left, True  # failed until every page went out
            while True:
                sent = self._database.run(
                    lambda conn: publish_pending(conn, self._producer, self.topic, self.sink_id)
                )
                total += sent
                if sent < 1000:
                    self._failed, self._left_covered = False, left
                    return total

    @property
    def behind(self) -> bool:
        return self._failed or self._left != self._left_covered

    def publish_later(self) -> None:
        """A caller that recorded events and skips publishing them now (the sink, while Kafka
        refuses) leaves them to the silence check's next round; a publish that began before
        this call does not clear it, since its pages may not hold them."""
        self._left += 1

    def close(self) -> None:
        with self._lock:
            if self._producer is not None and self._owns_producer:
                self._producer.close(timeout=5)
            self._producer = None
            self._database.close()
