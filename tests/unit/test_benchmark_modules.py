"""Benchmarks cannot rot, first line: every module under benchmarks/ imports (a benchmark that
imports a removed module fails here, not months later), every benchmark has its `run()`, and
the benchmark's log reading (Spark's query progress, the sink's laps) parses what the job logs."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from datetime import datetime, timedelta

import pytest

import benchmarks
from benchmarks import _batch_times, _cpu_use

pytestmark = pytest.mark.unit

MODULES = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__))
# Imported by benchmarks, or computing from their output (cost_model: docs/scaling.md's table),
# not benchmarks themselves (`make bench` skips them).
HELPERS = {"naive_consumer", "cost_model"}


@pytest.mark.parametrize("name", MODULES)
def test_every_benchmark_module_imports(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    if not name.startswith("_") and name not in HELPERS:
        assert callable(getattr(module, "run", None)), f"benchmarks.{name} has no run()"
        assert (module.__doc__ or "").strip(), f"benchmarks.{name}: `make bench` prints its doc"


def _progress(batch: int, rows: int, add_batch: int, name: str = "readings") -> str:
    durations = {"addBatch": add_batch, "latestOffset": 3, "triggerExecution": add_batch + 50}
    body = {"name": name, "batchId": batch, "numInputRows": rows, "durationMs": durations}
    pretty = json.dumps(body, indent=2)
    return f"26/12/01 12:02:40 INFO MicroBatchExecution: Streaming query made progress: {pretty}"


def _sink(batch: int, valid: int, stage: float, commit: float, wait: float = 0.0) -> str:
    return (
        f"2026-12-01 10:56:40,974 INFO heartbeat.sink batch {batch}: {valid} valid, 0 quarantined,"
        f" 3 minutes merged, 0 episode changes, 0 alerts published (stage {stage:.2f}s, wait"
        f" {wait:.2f}s, commit {commit:.2f}s, publish 0.01s, total"
        f" {stage + wait + commit + 0.01:.2f}s)"
    )


def test_batch_times_read_spark_phases_and_sink_laps_of_batches_with_input(tmp_path) -> None:
    log = tmp_path / "job.log"
    log.write_text(
        "\n".join(
            [
                _progress(0, 0, 900),  # no input: left out
                _sink(0, 0, 0.5, 0.5),
                _progress(1, 1000, 4000),  # the first with input: left out by summary
                _sink(1, 1000, 4.0, 2.0),
                "2026-12-01 INFO heartbeat.job something else",
                _progress(2, 1000, 100),
                _sink(2, 1000, 0.1, 0.2),
                _progress(3, 1000, 300),
                _sink(3, 1000, 0.3, 0.4),
                _progress(4, 1000, 200, name="other query"),
                "Streaming query made progress: {not json",
            ]
        )
    )
    text = log.read_text()
    assert [p["addBatch"] for p in _batch_times.spark_phases(text)] == [4000, 100, 300]
    assert [lap["commit"] for lap in _batch_times.sink_laps(text)] == [2.0, 0.2, 0.4]
    spark, sink = _batch_times.summary(log)
    assert "over 2:" in spark and "addBatch 100/300" in spark
    assert "triggerExecution 150/350" in spark
    assert "stage 100/300" in sink and "commit 200/400" in sink


def test_progress_logging_keeps_the_jobs_own_log_config(tmp_path) -> None:
    from heartbeat_ops.config import ROOT

    args = _batch_times.progress_logging(ROOT, tmp_path)["SPARK_SUBMIT_EXTRA_ARGS"]
    option, java = args.split(" ")
    assert option == "--driver-java-options"
    config = tmp_path / java.removeprefix("-Dlog4j2.configurationFile=file:").split("/")[-1]
    text = config.read_text()
    assert text.startswith((ROOT / "spark-jobs" / "log4j2.properties").read_text())
    assert f"logger.progress.name = {_batch_times.PROGRESS_LOGGER}" in text


def test_cpu_use_weighs_each_half_of_a_batch_by_the_cores_busy_during_it(tmp_path) -> None:
    """Three batches back to back: each stages 2 s with both cores busy (the job 1.5 of them)
    and commits 2 s with one (the job 0.1). Past the first, two batches of 8.02 s could take no
    less than their 12 busy core-seconds over 2 cores: 6 s."""
    began = datetime(2026, 12, 1, 10, 0, 0)
    lines = []
    for batch in range(3):
        ended = began + timedelta(seconds=4.01 * (batch + 1))
        stamp = f"{ended:%Y-%m-%d %H:%M:%S},{ended.microsecond // 1000:03d}"
        lines.append(stamp + _sink(batch, 1000, 2.0, 2.0)[len(stamp) :])
    log = tmp_path / "job.log"
    log.write_text("\n".join(lines))

    def staging(seconds: float) -> bool:  # seconds since `began`
        return seconds % 4.01 < 2.0

    samples, busy, job = [], 0.0, 0.0
    for tick in range(0, 260):  # every 0.05 s over the 12.03 s of the three batches
        seconds = tick * 0.05
        samples.append(_cpu_use.Sample(began.timestamp() + seconds, busy, job))
        busy += 0.05 * (2.0 if staging(seconds) else 1.0)
        job += 0.05 * (1.5 if staging(seconds) else 0.1)

    use = _cpu_use.phase_use(log, samples)
    assert use is not None and (use.batches, use.messages) == (2, 2000)
    assert use.stage == pytest.approx((2.0, 1.5), abs=0.06)
    assert use.commit == pytest.approx((1.0, 0.1), abs=0.06)
    assert use.least_seconds(2) == pytest.approx(6.0, abs=0.2)
    first, second = _cpu_use.summary(use, copy_rate=1000.0, cores=2)
    assert "staging 2.00 (the job 1.50)" in first and "committing 1.00" in first
    assert re.search(r"at most 33[23] messages/s .*\(1\.3[34]x these batches' 249\)", second)
    assert "the machine 1.50 cores busy" in second


def test_cpu_use_counts_overlapped_batches_once(tmp_path) -> None:
    """The overlapped commit: batch k stages from 2k s to 2k+2 s while batch k-1 commits, and
    commits from 2k+2 s to 2k+4 s, both cores busy throughout. A batch ends every 2 s: past the
    first, two batches in the 4 s between its end and the last one's, 500 messages/s, already
    all the two cores can give (their windows overlap, and are counted once)."""
    began = datetime(2026, 12, 1, 10, 0, 0)
    lines = []
    for batch in range(3):
        ended = began + timedelta(seconds=2 * batch + 4.01)
        stamp = f"{ended:%Y-%m-%d %H:%M:%S},{ended.microsecond // 1000:03d}"
        lines.append(stamp + _sink(batch, 1000, 2.0, 2.0)[len(stamp) :])
    log = tmp_path / "job.log"
    log.write_text("\n".join(lines))
    samples = [
        _cpu_use.Sample(began.timestamp() + tick * 0.05, tick * 0.1, tick * 0.05)
        for tick in range(0, 170)  # every 0.05 s over 8.5 s: two cores busy, the job one
    ]

    use = _cpu_use.phase_use(log, samples)
    assert use is not None and (use.batches, use.messages) == (2, 2000)
    assert use.wall_s == pytest.approx(4.0, abs=0.01)
    assert use.stage == pytest.approx((2.0, 1.0), abs=0.01)
    assert use.commit == pytest.approx((2.0, 1.0), abs=0.01)
    _, second = _cpu_use.summary(use, copy_rate=1000.0, cores=2)
    assert "the machine 2.00 cores busy" in second and "(1.00x these batches' 500)" in second


def test_cpu_use_says_when_batches_are_too_short_to_sample(tmp_path) -> None:
    log = tmp_path / "job.log"
    log.write_text(_sink(1, 1000, 0.01, 0.01))
    assert _cpu_use.phase_use(log, []) is None
    assert _cpu_use.summary(None, 1000.0, 2) == ["cores in use: batches too short to sample"]
