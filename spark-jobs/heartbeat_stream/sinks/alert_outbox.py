"""Publish newly opened episodes to the alerts topic, at least once (a transactional outbox).

An episode is committed with the batch first and marked published only after Kafka acked it,
so a crash in between republishes it on the next batch rather than losing it. A crash after the
ack but before the mark sends it again: delivery is at least once, and every event carries a
stable `alert_id` (the same for every send of one episode) by which consumers deduplicate.
"""

from __future__ import annotations

from kafka import KafkaProducer
from psycopg2.extensions import connection

from heartbeat_contract.alerts import alert_message

_PENDING = """
SELECT id, customer_id, kind, started_at, extreme_bpm, readings
FROM heart_rate_alerts
WHERE sink_id = %s AND published_at IS NULL
ORDER BY id
LIMIT 1000
"""


def publish_pending(conn: connection, producer: KafkaProducer, topic: str, sink_id: str) -> int:
    """Send unpublished episodes, wait for acks, then mark them; returns how many were sent."""
    with conn, conn.cursor() as cur:
        cur.execute(_PENDING, (sink_id,))
        pending = cur.fetchall()
        if not pending:
            return 0
        futures = [
            producer.send(topic, key=key, value=value)
            for key, value in (alert_message(*row[1:]) for row in pending)
        ]
        producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises if any send failed: nothing gets marked
        cur.execute(
            "UPDATE heart_rate_alerts SET published_at = now() WHERE id = ANY(%s)",
            ([row[0] for row in pending],),
        )
    return len(pending)
