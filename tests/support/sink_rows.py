"""What one sink (one job's checkpoint) recorded, read as the superuser: written once for the
silence tests (the check's rounds without Spark, and the spark-submit job end to end)."""

from __future__ import annotations

from datetime import datetime

from heartbeat_ops.config import StackConfig
from tests.support.db import superuser_query


class SinkRows:
    """Rows of `sink_id` only: other sinks of the tests' database never count."""

    def __init__(self, stack: StackConfig, sink_id: str) -> None:
        self.stack = stack
        self.sink_id = sink_id

    def query(self, sql: str, *params: object) -> list[tuple]:
        """`sql` with the sink id as its first %s, then `params`."""
        return superuser_query(self.stack, sql, self.sink_id, *params)

    def episodes(self, kind: str, columns: str) -> list[tuple]:
        """`columns` of the sink's episodes of `kind`, oldest first."""
        return self.query(
            f"SELECT {columns} FROM heart_rate_alerts WHERE sink_id = %s AND kind = %s"
            " ORDER BY started_at, customer_id",
            kind,
        )

    def events(self, customer: str) -> list[tuple[str, int]]:
        """(status, revision) of the customer's recorded alert events, in order."""
        return self.query(
            "SELECT status, revision FROM alert_events WHERE sink_id = %s AND customer_id = %s"
            " ORDER BY id",
            customer,
        )

    def seen(self, customer: str) -> datetime | None:
        """The customer's last reading as the sink's activity table has it."""
        rows = self.query(
            "SELECT last_seen_at FROM customer_activity WHERE sink_id = %s AND customer_id = %s",
            customer,
        )
        return rows[0][0] if rows else None
