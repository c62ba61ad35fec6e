"""The Kafka source's options: a trickle of readings waits for a fuller batch, a backlog never."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from heartbeat_stream.config import JobConfig
from heartbeat_stream.runtime.job import source_options

pytestmark = pytest.mark.unit


def options(monkeypatch, **env: str) -> dict[str, str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return source_options(JobConfig())


def test_by_default_a_batch_waits_for_250_readings_or_one_second(monkeypatch):
    monkeypatch.delenv("HEARTBEAT_MIN_OFFSETS_PER_TRIGGER", raising=False)
    monkeypatch.delenv("HEARTBEAT_MAX_TRIGGER_DELAY", raising=False)
    chosen = options(monkeypatch, HEARTBEAT_MAX_OFFSETS_PER_TRIGGER="100000")
    assert (chosen["minOffsetsPerTrigger"], chosen["maxTriggerDelay"]) == ("250", "1s")


def test_the_wait_never_asks_for_more_than_a_batch_may_hold(monkeypatch):
    # Spark refuses a minimum above the maximum; a small batch bound caps the wait instead.
    chosen = options(
        monkeypatch,
        HEARTBEAT_MIN_OFFSETS_PER_TRIGGER="250",
        HEARTBEAT_MAX_OFFSETS_PER_TRIGGER="100",
    )
    assert (chosen["minOffsetsPerTrigger"], chosen["maxOffsetsPerTrigger"]) == ("100", "100")


def test_zero_turns_the_wait_off(monkeypatch):
    chosen = options(monkeypatch, HEARTBEAT_MIN_OFFSETS_PER_TRIGGER="0")
    assert not {"minOffsetsPerTrigger", "maxTriggerDelay"} & set(chosen)


@pytest.mark.parametrize("delay", ["1 second", "1.5s", "soon", "-1s"])
def test_a_delay_spark_would_misread_is_refused_by_name(monkeypatch, delay):
    monkeypatch.setenv("HEARTBEAT_MAX_TRIGGER_DELAY", delay)
    with pytest.raises(ValidationError, match="HEARTBEAT_MAX_TRIGGER_DELAY"):
        JobConfig()
