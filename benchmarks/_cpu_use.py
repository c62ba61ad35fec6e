"""The cores a benchmarked job's batches keep busy while they stage and while they commit, and
over the whole drain: what bounds it, and how fast the same work could go at most.

Each batch has two halves: Spark stages it (the job's JVM, PostgreSQL taking the rows), then
one transaction commits it (PostgreSQL). Run in turn, each half leaves cores idle; overlapped
(the job's default, sinks/commit_pipeline.py: batch N+1 stages while N commits) they share them.
Either way, the machine's busy core-seconds over the batches, spread over every core, are the
least time the same work can take. A sampler reads /proc every quarter second; each batch's
windows come from its log line (its end and its laps, _batch_times): its stage, then its commit
after any wait for the previous batch's.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks import _batch_times

INTERVAL_S = 0.25
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    at: float  # epoch seconds
    busy_s: float  # CPU seconds of every core so far (/proc/stat, not idle nor iowait)
    job_s: float  # CPU seconds so far of the job's processes (its process group)


def _machine_busy_s() -> float:
    with open("/proc/stat") as stat:
        ticks = [int(field) for field in stat.readline().split()[1:]]
    idle, iowait = ticks[3], ticks[4]
    return (sum(ticks) - idle - iowait) / _TICKS


def group_processes(group: int) -> Iterator[tuple[Path, list[str]]]:
    """(/proc/<pid>, its stat fields after the command name) of each live process of process
    group `group`: a job's spark-submit, its JVM and its Python driver."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group:
            yield proc, fields


def _group_cpu_s(group: int) -> float:
    """CPU seconds (user + system) of the live processes of process group `group`."""
    ticks = sum(int(fields[11]) + int(fields[12]) for _, fields in group_processes(group))
    return ticks / _TICKS


class CpuTimeline(threading.Thread):
    """Samples the machine's and the job's CPU seconds until stopped."""

    def __init__(self, job_group: int) -> None:
        super().__init__(daemon=True, name="cpu-timeline")
        self.job_group = job_group
        self.samples: list[Sample] = []
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.is_set():
            busy = _machine_busy_s()
            self.samples.append(Sample(time.time(), busy, _group_cpu_s(self.job_group)))
            self._stopped.wait(INTERVAL_S)

    def stop(self) -> list[Sample]:
        self._stopped.set()
        self.join(timeout=10)
        return self.samples


def cores_between(samples: list[Sample], start: float, end: float) -> tuple[float, float] | None:
    """(machine, job) cores in use on average from `start` to `end`, from the samples inside
    the window; None when fewer than two fall in it."""
    inside = [s for s in samples if start <= s.at <= end]
    if len(inside) < 2:
        return None
    first, last = inside[0], inside[-1]
    seconds = last.at - first.at
    return (last.busy_s - first.busy_s) / seconds, (last.job_s - first.job_s) / seconds


@dataclass(frozen=True)
class PhaseUse:
    """Busy cores while the batches staged and while they committed, and their wall time."""

    batches: int
    messages: int
    stage: tuple[float, float]  # (machine, job) cores, weighted by each stage's seconds
    commit: tuple[float, float]
    wall_s: float  # from the end of the batch before them to the end of the last
    core_s: float  # the machine's busy core-seconds over that span

    def least_seconds(self, cores: int) -> float:
        """The least time the batches could take on `cores` with the same work: their busy
        core-seconds spread over every core."""
        return self.core_s / cores


def phase_use(log_path: Path, samples: list[Sample], skip_first: bool = True) -> PhaseUse | None:
    """Over the batches with input (the first, whose JVM is compiling, left out when there are
    others): the cores busy during each stage and commit that spans two samples, and the
    machine's busy core-seconds from the end of the batch before them to the end of the last.
    Measured between batch ends, a span holds these batches' work whether they ran in turn or
    overlapped: each end is one more batch staged and committed. None when nothing was sampled."""
    batches = _batch_times.sink_batches(log_path.read_text(errors="replace"))
    if not batches:
        return None
    if skip_first and len(batches) > 1:
        began, batches = batches[0].ended_at, batches[1:]
    else:
        began = batches[0].ended_at - batches[0].laps["total"]
    ended = batches[-1].ended_at
    stage_cores, commit_cores = [0.0, 0.0], [0.0, 0.0]
    stage_s = commit_s = 0.0
    for batch in batches:
        begin = batch.ended_at - batch.laps["total"]
        staged = begin + batch.laps["stage"]
        commit_begins = staged + batch.laps.get("wait", 0.0)  # after the previous batch's commit
        committed = commit_begins + batch.laps["commit"]
        during_stage = cores_between(samples, begin, staged)
        during_commit = cores_between(samples, commit_begins, committed)
        if during_stage is None or during_commit is None:
            continue
        for totals, cores, seconds in (
            (stage_cores, during_stage, batch.laps["stage"]),
            (commit_cores, during_commit, batch.laps["commit"]),
        ):
            totals[0] += cores[0] * seconds
            totals[1] += cores[1] * seconds
        stage_s += batch.laps["stage"]
        commit_s += batch.laps["commit"]
    throughout = cores_between(samples, began, ended)
    if throughout is None or not stage_s or not commit_s:
        return None
    return PhaseUse(
        batches=len(batches),
        messages=sum(batch.messages for batch in batches),
        stage=(stage_cores[0] / stage_s, stage_cores[1] / stage_s),
        commit=(commit_cores[0] / commit_s, commit_cores[1] / commit_s),
        wall_s=ended - began,
        core_s=throughout[0] * (ended - began),
    )


def summary(use: PhaseUse | None, copy_rate: float, cores: int) -> list[str]:
    """Printable lines: the cores each half keeps busy, and the ceiling of the same work."""
    if use is None:
        return ["cores in use: batches too short to sample"]
    ceiling = use.messages / use.least_seconds(cores)
    now = use.messages / use.wall_s
    per_message_us = use.core_s / use.messages * 1e6
    wanted_us = cores / (0.35 * copy_rate) * 1e6
    return [
        f"cores in use (of {cores}) over {use.batches} batches: staging {use.stage[0]:.2f}"
        f" (the job {use.stage[1]:.2f}), committing {use.commit[0]:.2f} (the job"
        f" {use.commit[1]:.2f})",
        f"the machine {use.core_s / use.wall_s:.2f} cores busy over these batches; with every"
        f" core busy the same work could go at most {ceiling:,.0f} messages/s ="
        f" {ceiling / copy_rate:.0%} of COPY ({ceiling / now:.2f}x these batches' {now:,.0f});"
        f" {per_message_us:.1f} core-us per message, 35 % of COPY needs {wanted_us:.1f}",
    ]
