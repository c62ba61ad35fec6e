"""Record each micro-batch's progress in pipeline_metrics, for the dashboard's health charts."""

from __future__ import annotations

import json
import logging

import psycopg2
from pyspark.sql.streaming import StreamingQueryListener

from ..config import JobConfig

log = logging.getLogger("heartbeat.metrics")

_UPSERT = """
INSERT INTO pipeline_metrics (query_id, query_name, batch_id, run_id, batch_time, input_rows,
    input_rows_per_second, processed_rows_per_second, batch_duration_ms, kafka_lag)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (query_id, batch_id) DO UPDATE SET run_id = EXCLUDED.run_id,
    batch_time = EXCLUDED.batch_time, input_rows = EXCLUDED.input_rows,
    input_rows_per_second = EXCLUDED.input_rows_per_second,
    processed_rows_per_second = EXCLUDED.processed_rows_per_second,
    batch_duration_ms = EXCLUDED.batch_duration_ms, kafka_lag = EXCLUDED.kafka_lag
"""


def kafka_lag(end_offset: str | None, latest_offset: str | None) -> int | None:
    """Messages between what the batch read up to and the newest offsets, over all partitions.

    Both arguments are the Kafka source's JSON: {"topic": {"0": 42, "1": 17}}.
    """
    if not end_offset or not latest_offset:
        return None
    try:
        end, latest = json.loads(end_offset), json.loads(latest_offset)
    except ValueError:  # while the broker is away Spark reports a non-JSON latest offset
        return None
    if not isinstance(end, dict) or not isinstance(latest, dict):
        return None
    return sum(
        max(0, int(offset) - int(end.get(topic, {}).get(partition, 0)))
        for topic, partitions in latest.items()
        for partition, offset in partitions.items()
    )


class PipelineMetricsListener(StreamingQueryListener):
    """Runs on the driver; a failure to record metrics is logged, never fails the stream."""

    def __init__(self, config: JobConfig) -> None:
        self.config = config
        self._conn: psycopg2.extensions.connection | None = None

    def onQueryStarted(self, event) -> None:
        log.info("query %s started (run %s)", event.name, event.runId)

    def onQueryProgress(self, event) -> None:
        progress = event.progress
        source = progress.sources[0] if progress.sources else None
        row = (
            str(progress.id),
            progress.name or "",
            progress.batchId,
            str(progress.runId),
            progress.timestamp,
            progress.numInputRows,
            _finite(progress.inputRowsPerSecond),
            _finite(progress.processedRowsPerSecond),
            progress.batchDuration,
            kafka_lag(source.endOffset, source.latestOffset) if source else None,
        )
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg2.connect(
                    **{**self.config.libpq_params, "application_name": "heartbeat-metrics"}
                )
            with self._conn, self._conn.cursor() as cur:
                cur.execute(_UPSERT, row)
        except psycopg2.Error as error:
            log.warning("could not record metrics of batch %s: %s", progress.batchId, error)
            self._conn = None

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        log.info(
            "query %s terminated%s", event.id, f": {event.exception}" if event.exception else ""
        )


def _finite(value: float | None) -> float | None:
    return value if value is not None and value == value and value != float("inf") else None
