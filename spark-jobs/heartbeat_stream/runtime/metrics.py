"""Record each micro-batch's progress in pipeline_metrics, for the dashboard's health charts."""

from __future__ import annotations

import json
import logging
from typing import ClassVar

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


def _offsets(value: object) -> dict | None:
    """A Kafka source's offsets, {"topic": {"0": 42}}, from their JSON text or already parsed."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:  # while the broker is away Spark reports a non-JSON latest offset
            return None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        return None
    return value


def kafka_lag(end_offset: object, latest_offset: object) -> int | None:
    """Messages between what the batch read up to and the newest offsets, over all partitions.

    Both arguments are the Kafka source's offsets, {"topic": {"0": 42, "1": 17}}: as JSON text,
    or parsed (a progress report read as JSON carries them parsed when they parse, else as text).
    """
    end, latest = _offsets(end_offset), _offsets(latest_offset)
    if end is None or latest is None:
        return None
    return sum(
        max(0, int(offset) - int(end.get(topic, {}).get(partition, 0)))
        for topic, partitions in latest.items()
        for partition, offset in partitions.items()
    )


def metrics_row(progress: dict) -> tuple:
    """pipeline_metrics' row of one progress report (StreamingQueryProgress.json(), parsed)."""
    sources = progress.get("sources") or []
    source = sources[0] if sources else None
    return (
        progress["id"],
        progress.get("name") or "",
        progress["batchId"],
        progress["runId"],
        progress["timestamp"],
        progress.get("numInputRows"),
        _finite(progress.get("inputRowsPerSecond")),  # absent when Spark had no finite value
        _finite(progress.get("processedRowsPerSecond")),
        progress.get("batchDuration"),
        kafka_lag(source.get("endOffset"), source.get("latestOffset")) if source else None,
    )


class _EventsAsJson:
    """The listener's Java side (a py4j callback): each progress report is read as its JSON, in
    one call. PySpark's own wrapper copies a report field by field and turns its Java maps into
    dicts through Java iterators, which end in an exception PySpark converts at length (some 70
    class lookups over the classpath per report): 15 % of the job's JVM CPU at the demo's 100
    readings a second, measured with Java Flight Recorder."""

    def __init__(self, listener: PipelineMetricsListener) -> None:
        self._listener = listener

    def onQueryStarted(self, jevent) -> None:  # Spark's interface, by name
        log.info("query %s started (run %s)", jevent.name(), jevent.runId().toString())

    def onQueryProgress(self, jevent) -> None:
        self._listener.record(json.loads(jevent.progress().json()))

    def onQueryIdle(self, jevent) -> None:
        pass

    def onQueryTerminated(self, jevent) -> None:
        error = jevent.exception()  # a Scala Option of the message
        reason = f": {error.get()}" if error.isDefined() else ""
        log.info("query %s terminated%s", jevent.id().toString(), reason)

    class Java:
        implements: ClassVar[list[str]] = [
            "org.apache.spark.sql.streaming.PythonStreamingQueryListener"
        ]


class PipelineMetricsListener(StreamingQueryListener):
    """Runs on the driver; a failure to record metrics is logged, never fails the stream.
    Registered with spark.streams.addListener; Spark's events reach it as JSON (_EventsAsJson)."""

    def __init__(self, config: JobConfig) -> None:
        self.config = config
        self._conn: psycopg2.extensions.connection | None = None
        self._java = None

    @property
    def _jlistener(self):
        """What addListener registers (PySpark's hook): Spark's wrapper over _EventsAsJson."""
        from pyspark import SparkContext

        if self._java is None:
            wrapper = SparkContext._jvm.PythonStreamingQueryListenerWrapper
            self._java = wrapper(_EventsAsJson(self))
        return self._java

    def record(self, progress: dict) -> None:
        row = metrics_row(progress)
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg2.connect(
                    **{**self.config.libpq_params, "application_name": "heartbeat-metrics"}
                )
            with self._conn, self._conn.cursor() as cur:
                cur.execute(_UPSERT, row)
        except psycopg2.Error as error:
            log.warning("could not record metrics of batch %s: %s", progress["batchId"], error)
            self._conn = None

    # StreamingQueryListener's interface; the events arrive through _EventsAsJson instead.
    def onQueryStarted(self, event) -> None:
        pass

    def onQueryProgress(self, event) -> None:
        pass

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        pass


def _finite(value: float | None) -> float | None:
    return value if value is not None and value == value and value != float("inf") else None
