"""A batch Spark recorded but PostgreSQL never committed is run again at the next start
(runtime/replay_ahead.py): which batch, and its record removed from the checkpoint through
Hadoop's file system, as Spark reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from heartbeat_stream.config import JobConfig
from heartbeat_stream.runtime import replay_ahead
from heartbeat_stream.runtime.replay_ahead import batch_to_run_again, replay_batch_recorded_ahead

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("spark_committed", "sink_committed", "expected"),
    [
        ([0, 1, 2], 1, 2),  # Spark one batch ahead: run batch 2 again
        ([0], -1, 0),  # the first batch, never committed
        ([0, 1, 2], 2, None),  # level
        ([0, 1, 2], 3, None),  # Spark behind: it replays, and the sink skips
        ([0, 1, 2], 0, None),  # two ahead: not this job's doing (a restored database)
        ([], -1, None),  # nothing recorded
    ],
)
def test_only_a_batch_exactly_one_past_the_sink_is_run_again(
    spark_committed, sink_committed, expected
):
    assert batch_to_run_again(spark_committed, sink_committed) == expected


def _records(directory: Path, batches: list[int]) -> None:
    directory.mkdir(parents=True)
    for batch in batches:
        (directory / str(batch)).write_text("v1\n{}")
        (directory / f".{batch}.crc").write_bytes(b"crc")  # as Hadoop's local file system writes


def _checkpoint(tmp_path: Path, committed: list[int], planned: list[int]) -> JobConfig:
    config = JobConfig().model_copy(update={"checkpoint_dir": str(tmp_path)})
    _records(Path(config.readings_checkpoint) / "commits", committed)
    _records(Path(config.readings_checkpoint) / "offsets", planned)
    return config


def _left(config: JobConfig, log_name: str) -> list[str]:
    return sorted(p.name for p in (Path(config.readings_checkpoint) / log_name).iterdir())


def test_the_batch_ahead_and_the_one_planned_after_it_are_removed(spark, tmp_path, monkeypatch):
    """Spark committed 2, planned 3; PostgreSQL committed 1: Spark must run 2 again, and it runs
    again only its newest planned batch, so 3's plan goes too."""
    config = _checkpoint(tmp_path, [0, 1, 2], [0, 1, 2, 3])
    monkeypatch.setattr(replay_ahead, "last_committed_batch", lambda _config: 1)
    assert replay_batch_recorded_ahead(spark, config) == 2
    assert _left(config, "commits") == [".0.crc", ".1.crc", "0", "1"]
    assert _left(config, "offsets") == [".0.crc", ".1.crc", ".2.crc", "0", "1", "2"]


def test_a_checkpoint_level_with_the_sink_or_new_is_left_alone(spark, tmp_path, monkeypatch):
    config = _checkpoint(tmp_path, [0, 1, 2], [0, 1, 2, 3])
    monkeypatch.setattr(replay_ahead, "last_committed_batch", lambda _config: 2)
    assert replay_batch_recorded_ahead(spark, config) is None
    assert len(_left(config, "commits")) == 6 and len(_left(config, "offsets")) == 8
    fresh = JobConfig().model_copy(update={"checkpoint_dir": str(tmp_path / "new")})
    assert replay_batch_recorded_ahead(spark, fresh) is None
