"""Where a benchmarked job's batches spent their time, read from its log: Spark's own phases
(the query progress' durationMs) beside the sink's laps (its `batch N: ... (stage 1.2s, ...)`).

Spark 4 logs each query progress at INFO (logger ProgressReporter); the job's log4j2 config
keeps Spark at WARN, so a benchmarked job gets a copy of its own config with that one logger at
INFO (`progress_logging`), given to spark-submit as extra arguments. Nothing in spark-jobs/
changes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

PROGRESS_LOGGER = "org.apache.spark.sql.execution.streaming.runtime.ProgressReporter"
_PROGRESS = "Streaming query made progress: "
# The phases of Spark's micro-batch, in the order they happen (triggerExecution is the whole).
SPARK_PHASES = (
    "latestOffset", "queryPlanning", "getBatch", "walCommit", "addBatch", "commitOffsets",
    "triggerExecution",
)  # fmt: skip
SINK_BATCH = re.compile(
    r"^(\S+ \S+) .*heartbeat\.sink batch (\d+): (\d+) valid, (\d+) quarantined.*\((.*)\)$"
)
_LOGGED_AT = "%Y-%m-%d %H:%M:%S,%f"  # the job's log lines: local time, as Python's logging writes
_LAP = re.compile(r"([a-z ]+?) (\d+(?:\.\d+)?)s$")


def progress_logging(job_root: Path, workdir: Path) -> dict[str, str]:
    """spark-submit arguments (SPARK_SUBMIT_EXTRA_ARGS) that log the query progress: the job's
    own log4j2 config plus the progress logger at INFO (a later --driver-java-options wins)."""
    config = workdir / f"log4j2-progress-{job_root.name}.properties"
    own = (job_root / "spark-jobs" / "log4j2.properties").read_text()
    config.write_text(
        f"{own}\nlogger.progress.name = {PROGRESS_LOGGER}\nlogger.progress.level = info\n"
    )
    java_options = f"-Dlog4j2.configurationFile=file:{config}"
    return {"SPARK_SUBMIT_EXTRA_ARGS": f"--driver-java-options {java_options}"}


def spark_phases(log_text: str, query_name: str = "readings") -> list[dict[str, int]]:
    """durationMs of each progress of `query_name` with input, in batch order."""
    decoder = json.JSONDecoder()
    found: dict[int, dict[str, int]] = {}
    start = log_text.find(_PROGRESS)
    while start >= 0:
        try:
            progress, _ = decoder.raw_decode(log_text, start + len(_PROGRESS))
        except ValueError:  # a line of another writer inside the block: leave it out
            progress = {}
        if progress.get("name") == query_name and progress.get("numInputRows", 0) > 0:
            found[progress["batchId"]] = progress.get("durationMs", {})
        start = log_text.find(_PROGRESS, start + 1)
    return [found[batch] for batch in sorted(found)]


@dataclass(frozen=True)
class SinkBatch:
    ended_at: float  # epoch seconds: when the batch's log line was written
    messages: int
    laps: dict[str, float]  # stage, commit, publish, total: seconds


def sink_batches(log_text: str) -> list[SinkBatch]:
    """The sink's batches with messages, in log order."""
    batches = []
    for line in log_text.splitlines():
        match = SINK_BATCH.search(line)
        if match and int(match[3]) + int(match[4]) > 0:
            batches.append(
                SinkBatch(
                    ended_at=datetime.strptime(match[1], _LOGGED_AT).timestamp(),
                    messages=int(match[3]) + int(match[4]),
                    laps=dict(parse_laps(match[5])),
                )
            )
    return batches


def sink_laps(log_text: str) -> list[dict[str, float]]:
    """The sink's laps (stage, commit, publish, total: seconds) of each batch with messages."""
    return [batch.laps for batch in sink_batches(log_text)]


def parse_laps(text: str) -> Iterator[tuple[str, float]]:
    for part in text.split(", "):
        lap = _LAP.match(part.strip())
        if lap:
            yield lap[1], float(lap[2])


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(log_path: Path, skip_first: bool = True) -> list[str]:
    """Printable lines: each Spark phase's and each sink lap's p50/p95 in ms, over the batches
    with input (the first, whose JVM is still compiling, left out when there are others)."""
    text = log_path.read_text(errors="replace")
    phases, laps = spark_phases(text), sink_laps(text)
    if skip_first:
        phases, laps = phases[1:] or phases, laps[1:] or laps
    lines = []
    if phases:
        cells = [
            f"{name} {_p(v, 0.5):,.0f}/{_p(v, 0.95):,.0f}"
            for name in SPARK_PHASES
            if (v := [float(p.get(name, 0)) for p in phases])
        ]
        lines.append(f"Spark per batch, p50/p95 ms over {len(phases)}: {', '.join(cells)}")
    else:
        lines.append("Spark per batch: no query progress in the log")
    if laps:
        names = list(dict.fromkeys(name for lap in laps for name in lap))
        cells = [
            f"{name} {_p(v, 0.5) * 1000:,.0f}/{_p(v, 0.95) * 1000:,.0f}"
            for name in names
            if (v := [lap.get(name, 0.0) for lap in laps])
        ]
        lines.append(f"the sink's laps, p50/p95 ms over {len(laps)}: {', '.join(cells)}")
    return lines
