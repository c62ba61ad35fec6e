"""SQL that moves one staged micro-batch into its final tables, in one transaction.

Rows are keyed by Kafka provenance, so ON CONFLICT DO NOTHING makes a replayed batch a no-op:
this transaction, not Spark's commit log, is what makes the sink exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg2.extensions import connection

_MOVE_VALID = """
WITH moved AS (
    INSERT INTO heart_rate_readings
        (customer_id, "timestamp", heart_rate, kafka_topic, kafka_partition, kafka_offset)
    SELECT customer_id, "timestamp", heart_rate, kafka_topic, kafka_partition, kafka_offset
    FROM stage_messages
    WHERE sink_id = %(sink_id)s AND batch_id = %(batch_id)s AND reason IS NULL
    ON CONFLICT ON CONSTRAINT heart_rate_readings_provenance DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM moved
"""

_MOVE_REJECTED = """
WITH moved AS (
    INSERT INTO rejected_readings
        (raw_value, raw_value_base64, reason, detail, kafka_topic, kafka_partition, kafka_offset)
    SELECT raw_value, raw_value_base64, reason, detail, kafka_topic, kafka_partition, kafka_offset
    FROM stage_messages
    WHERE sink_id = %(sink_id)s AND batch_id = %(batch_id)s AND reason IS NOT NULL
    ON CONFLICT ON CONSTRAINT rejected_readings_provenance DO NOTHING
    RETURNING reason
)
SELECT reason, count(*) FROM moved GROUP BY reason ORDER BY reason
"""

_SAMPLE_REJECTED = """
SELECT reason, detail, kafka_partition, kafka_offset
FROM stage_messages
WHERE sink_id = %(sink_id)s AND batch_id = %(batch_id)s AND reason IS NOT NULL
ORDER BY kafka_partition, kafka_offset
LIMIT %(limit)s
"""

_CLEAR_STAGE = "DELETE FROM stage_messages WHERE sink_id = %(sink_id)s AND batch_id = %(batch_id)s"


@dataclass(frozen=True)
class BatchOutcome:
    """What one move inserted; a replayed batch reports zeros."""

    valid: int
    rejected_by_reason: dict[str, int]
    samples: list[tuple[str, str, int, int]] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())


def move_staged_batch(
    conn: connection, sink_id: str, batch_id: int, sample_limit: int = 0
) -> BatchOutcome:
    """Insert the staged batch into readings/rejected and clear it, atomically."""
    params = {"sink_id": sink_id, "batch_id": batch_id, "limit": sample_limit}
    with conn, conn.cursor() as cur:  # one transaction: commit on success, roll back on error
        samples = []
        if sample_limit:
            cur.execute(_SAMPLE_REJECTED, params)
            samples = cur.fetchall()
        cur.execute(_MOVE_VALID, params)
        (valid,) = cur.fetchone()
        cur.execute(_MOVE_REJECTED, params)
        rejected = dict(cur.fetchall())
        cur.execute(_CLEAR_STAGE, params)
    return BatchOutcome(valid=valid, rejected_by_reason=rejected, samples=samples)
