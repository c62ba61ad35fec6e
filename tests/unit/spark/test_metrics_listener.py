"""The job's progress listener reads Spark's reports as JSON: one per batch, with the fields
pipeline_metrics keeps (a real Spark session, a small file stream)."""

from __future__ import annotations

import json

import pytest

from heartbeat_stream.runtime.metrics import PipelineMetricsListener, metrics_row
from tests.support.stream_job import wait_for

pytestmark = pytest.mark.unit


class _Captured(PipelineMetricsListener):
    """The real listener with its database write replaced by a list."""

    def __init__(self) -> None:
        super().__init__(config=None)
        self.reports: list[dict] = []

    def record(self, progress: dict) -> None:
        self.reports.append(progress)


def test_each_batch_reaches_the_listener_as_its_json_report(spark, tmp_path, caplog):
    caplog.set_level("INFO", logger="heartbeat.metrics")
    source = tmp_path / "in"
    source.mkdir()
    (source / "a.json").write_text("".join(json.dumps({"n": n}) + "\n" for n in range(3)))
    listener = _Captured()
    spark.streams.addListener(listener)
    try:
        query = (
            spark.readStream.schema("n int")
            .json(str(source))
            .writeStream.queryName("metrics_listener_test")
            .format("noop")
            .option("checkpointLocation", str(tmp_path / "checkpoint"))
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination(120)
        wait_for(lambda: listener.reports, 60, "the batch's progress report")
        terminated = f"query {query.id} terminated"
        wait_for(lambda: terminated in caplog.text, 60, "the query's end, logged")
    finally:
        spark.streams.removeListener(listener)
    (report,) = [r for r in listener.reports if r["numInputRows"]]
    row = metrics_row(report)
    assert row[:4] == (str(query.id), "metrics_listener_test", 0, str(query.runId))
    assert row[5] == 3 and row[8] >= 0  # input rows, batch duration in ms
    assert row[9] is None  # a file source's offsets are not Kafka's: no lag, and no error


def test_a_kafka_report_gives_the_lag_over_partitions_and_no_infinite_rate():
    report = {
        "id": "q",
        "runId": "r",
        "name": "readings",
        "batchId": 7,
        "timestamp": "2026-12-03T08:00:00.000Z",
        "numInputRows": 10,
        "processedRowsPerSecond": 100.0,  # inputRowsPerSecond absent: Spark had no finite value
        "batchDuration": 100,
        "sources": [
            {
                "endOffset": {"t": {"0": 10, "1": 5}},
                "latestOffset": {"t": {"0": 12, "1": 9, "2": 3}},
            }
        ],
    }
    assert metrics_row(report) == (
        "q", "readings", 7, "r", "2026-12-03T08:00:00.000Z", 10, None, 100.0, 100, 2 + 4 + 3
    )  # fmt: skip
    report["sources"][0]["latestOffset"] = "not reachable"  # the broker away: text, not offsets
    assert metrics_row(report)[9] is None
