"""The lag metric survives what Spark reports while the broker is away (seen in the Kafka fault)."""

from __future__ import annotations

import pytest

from heartbeat_stream.runtime.metrics import kafka_lag

pytestmark = pytest.mark.unit


def test_lag_over_partitions():
    end = '{"t": {"0": 10, "1": 5}}'
    latest = '{"t": {"0": 12, "1": 9, "2": 3}}'
    assert kafka_lag(end, latest) == 2 + 4 + 3


@pytest.mark.parametrize("latest", [None, "", "None", "{not json", "[]", "null"])
def test_unreadable_latest_offset_gives_no_lag_instead_of_an_error(latest):
    assert kafka_lag('{"t": {"0": 10}}', latest) is None


def test_parsed_offsets_as_a_json_report_carries_them():
    assert kafka_lag({"t": {"0": 10}}, {"t": {"0": 12}}) == 2
    assert kafka_lag({"logOffset": 0}, {"logOffset": 3}) is None  # not a Kafka source's
