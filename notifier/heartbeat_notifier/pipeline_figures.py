"""The notifier's figures in pipeline_metrics, next to the stream job's: one row per interval
(query_name 'notifier'), so the dashboards and SQL see deliveries, latency and consumer lag
without scraping /metrics. sql/010 says what each column means for these rows; the job's health
charts filter to query_name 'readings' and never mix the two."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from .metrics import Interval, percentile

QUERY_NAME = "notifier"
INTERVAL_SECONDS = 10.0

_INSERT = """
INSERT INTO pipeline_metrics (query_id, query_name, batch_id, run_id, batch_time, input_rows,
    input_rows_per_second, processed_rows_per_second, batch_duration_ms, kafka_lag, details)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""  # no ON CONFLICT: its arbiter needs SELECT, and the role may only insert here


@dataclass(frozen=True)
class FiguresRow:
    query_id: str
    batch_id: int
    run_id: str
    batch_time: datetime
    input_rows: int
    input_rows_per_second: float
    processed_rows_per_second: float
    batch_duration_ms: int
    kafka_lag: int | None
    details: dict[str, object]

    def values(self) -> tuple:
        return (self.query_id, QUERY_NAME, self.batch_id, self.run_id, self.batch_time,
                self.input_rows, self.input_rows_per_second, self.processed_rows_per_second,
                self.batch_duration_ms, self.kafka_lag, json.dumps(self.details))  # fmt: skip


def figures_row(
    interval: Interval,
    *,
    group: str,
    run_id: str,
    ended_at: datetime,
    seconds: float,
    lag: dict[str, int],
    in_flight: int,
    backlog: dict[int, tuple[int, float]] | None = None,
) -> FiguresRow:
    """One interval's row. batch_id is the interval's end in epoch milliseconds: increasing within
    a run; two notifiers of one group (query_id) collide only at the same millisecond, and then
    the second one's row is refused (a unique violation, logged)."""
    seconds = max(seconds, 1e-3)
    finished = sum(interval.deliveries.values())
    latencies_ms = [value * 1000 for value in interval.latencies]
    latency = {
        "count": len(latencies_ms),
        "p50": _rounded(percentile(latencies_ms, 0.5)),
        "p99": _rounded(percentile(latencies_ms, 0.99)),
        "max": _rounded(max(latencies_ms, default=None)),
    }
    deliveries = [
        {"channel_id": channel, "outcome": outcome, "count": count}
        for (channel, outcome), count in sorted(interval.deliveries.items())
    ]
    return FiguresRow(
        query_id=f"{QUERY_NAME}:{group}",
        batch_id=int(ended_at.timestamp() * 1000),
        run_id=run_id,
        batch_time=ended_at,
        input_rows=interval.events,
        input_rows_per_second=interval.events / seconds,
        processed_rows_per_second=finished / seconds,
        batch_duration_ms=round(seconds * 1000),
        kafka_lag=sum(lag.values()) if lag else None,
        details={
            "deliveries": deliveries,
            "delivery_latency_ms": latency,
            "consumer_lag": dict(sorted(lag.items())),
            "in_flight": in_flight,
            "backlog": [
                {"channel_id": channel, "pending": pending, "oldest_seconds": round(oldest, 1)}
                for channel, (pending, oldest) in sorted((backlog or {}).items())
            ],
        },
    )


def record(cur, row: FiguresRow) -> None:
    cur.execute(_INSERT, row.values())


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
