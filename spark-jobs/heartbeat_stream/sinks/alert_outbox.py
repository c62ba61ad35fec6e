"""Alert lifecycle events through a transactional outbox: recorded in the transaction that
changed the episode (`record`), published to the alerts topic after it commits
(`publish_pending`), at least once.

An event is marked published only after Kafka acked it, so a crash in between republishes it
with the next batch rather than losing it. A crash after the ack but before the mark sends it
again, byte-identical: consumers deduplicate by its `event_id`.
"""

from __future__ import annotations

from collections.abc import Mapping

from kafka import KafkaProducer
from psycopg2.extensions import connection, cursor

from heartbeat_contract.alerts import encode_event

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


def publish_pending(conn: connection, producer: KafkaProducer, topic: str, sink_id: str) -> int:
    """Send unpublished events in order, wait for acks, then mark them; returns how many."""
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
