"""The notifier's rows in pipeline_metrics: what one interval's row says, and that the stream
job's health charts read only the job's rows (query_name 'readings'), not the notifier's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from heartbeat_notifier.metrics import Metrics
from heartbeat_notifier.pipeline_figures import QUERY_NAME, figures_row
from heartbeat_ops.config import ROOT

pytestmark = pytest.mark.unit
BUNDLE = ROOT / "superset" / "bundle"
END = datetime(2026, 12, 1, 9, 0, 10, tzinfo=UTC)


def test_an_interval_row_counts_deliveries_per_channel_and_outcome():
    metrics = Metrics()
    for _ in range(4):
        metrics.event_read()
    metrics.delivery(1, "delivered", 0.2)
    metrics.delivery(1, "delivered", 0.4)
    metrics.delivery(2, "dead")
    metrics.delivery(1, "suppressed")
    row = figures_row(metrics.take_interval(), group="g", run_id="r", ended_at=END, seconds=10.0,
                      lag={"alerts/0": 3, "alerts/1": 2}, in_flight=1,
                      backlog={2: (30, 95.04)})  # fmt: skip

    values = row.values()
    assert values[:2] == ("notifier:g", QUERY_NAME) and QUERY_NAME != "readings"
    assert row.batch_id == int(END.timestamp() * 1000)
    assert (row.input_rows, row.input_rows_per_second) == (4, 0.4)
    assert row.processed_rows_per_second == pytest.approx(0.4)  # 4 finished in 10 s
    assert (row.batch_duration_ms, row.kafka_lag) == (10_000, 5)
    assert row.details["deliveries"] == [
        {"channel_id": 1, "outcome": "delivered", "count": 2},
        {"channel_id": 1, "outcome": "suppressed", "count": 1},
        {"channel_id": 2, "outcome": "dead", "count": 1},
    ]
    assert row.details["delivery_latency_ms"] == {"count": 2, "p50": 200.0, "p99": 400.0,
                                                  "max": 400.0}  # fmt: skip
    assert row.details["consumer_lag"] == {"alerts/0": 3, "alerts/1": 2}
    assert row.details["backlog"] == [{"channel_id": 2, "pending": 30, "oldest_seconds": 95.0}]


def test_taking_an_interval_starts_the_next_one_empty():
    metrics = Metrics()
    metrics.event_read()
    metrics.delivery(1, "delivered", 0.1)
    assert metrics.take_interval().events == 1
    empty = figures_row(metrics.take_interval(), group="g", run_id="r", ended_at=END,
                        seconds=10.0, lag={}, in_flight=0)  # fmt: skip
    assert (empty.input_rows, empty.processed_rows_per_second, empty.kafka_lag) == (0, 0.0, None)
    assert empty.details["delivery_latency_ms"]["p99"] is None
    assert empty.details["backlog"] == []
    # /metrics keeps counting across intervals.
    assert 'heartbeat_notifier_deliveries_total{channel="1",outcome="delivered"} 1' in (
        metrics.render()
    )


def _pipeline_charts() -> dict[str, dict]:
    dataset = yaml.safe_load(
        (BUNDLE / "datasets" / "heartbeat" / "pipeline_metrics.yaml").read_text()
    )
    charts = {}
    for path in (BUNDLE / "charts").glob("*.yaml"):
        chart = yaml.safe_load(path.read_text())
        if chart["dataset_uuid"] == dataset["uuid"]:
            charts[chart["slice_name"]] = chart
    return charts


def test_the_health_charts_each_read_one_programs_rows():
    """The job's three charts read only its rows, the notifier's chart only the notifier's, the
    replica's chart only the replica lag rows."""
    charts = _pipeline_charts()
    owner = {
        "Pipeline throughput (rows/s)": "readings",
        "Micro-batch duration (ms)": "readings",
        "Kafka lag (messages)": "readings",
        "Notifier (deliveries/s, consumer lag)": "notifier",
        "Read replica lag (bytes, seconds)": "replica",  # the notifier's replica_lag rows
    }
    assert set(charts) == set(owner)
    for name, chart in charts.items():
        filters = [
            (f["subject"], f["operator"], f["comparator"])
            for f in chart["params"]["adhoc_filters"]
            if f["subject"] == "query_name"
        ]
        assert filters == [("query_name", "==", owner[name])], name


def test_metrics_show_each_channels_backlog_as_two_gauge_families():
    metrics = Metrics()
    metrics.backlog = {1: (0, 0.0), 2: (30, 95.04)}
    lines = metrics.render().splitlines()
    pending = lines.index("# TYPE heartbeat_notifier_pending_deliveries gauge")
    oldest = lines.index("# TYPE heartbeat_notifier_oldest_pending_seconds gauge")
    assert lines[pending + 1 : pending + 3] == [
        'heartbeat_notifier_pending_deliveries{channel="1"} 0',
        'heartbeat_notifier_pending_deliveries{channel="2"} 30',
    ]
    assert lines[oldest + 1 : oldest + 3] == [
        'heartbeat_notifier_oldest_pending_seconds{channel="1"} 0.0',
        'heartbeat_notifier_oldest_pending_seconds{channel="2"} 95.0',
    ]
