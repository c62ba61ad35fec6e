"""`make soak`: the pipeline at a steady rate for a chosen time; lag and memory over time, ledger.

Not part of `make test`. Runs the real producer and job against this checkout's PostgreSQL and
Kafka, in a database of its own (`heartbeat_soak`), and prints every interval: the lag (messages
in Kafka not yet in PostgreSQL) and the resident memory (RSS) of the job, the producer,
PostgreSQL and Kafka. At the end the producer is stopped with SIGTERM and the ledger checked.
A CSV (and a PNG chart when matplotlib is installed) lands in var/log/.

    make soak SOAK_RATE=100 SOAK_MINUTES=30
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

from kafka.admin import NewTopic

from heartbeat_contract.settings import Settings
from heartbeat_ops import database, supervisor
from heartbeat_ops.config import load, scrub_ambient_libpq, var_dir
from heartbeat_ops.principals import admin_client
from tests.support import harness
from tests.support.ledger import Expected, wait_until_balanced
from tests.support.sockets import descendants
from tests.support.stream_job import StreamJob

GROWTH_WINDOW_S = 20 * 60  # issue 20: RSS growth over the last 20 minutes at most 10 %


def _memory_mib(pids: list[int], source: str, field: str) -> float:
    total_kb = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/{source}").read_text().splitlines():
                if line.startswith(field):
                    total_kb += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total_kb / 1024


def rss_mib(pids: list[int]) -> float:
    """Resident memory of a set of processes, MiB."""
    return _memory_mib(pids, "status", "VmRSS:")


def pss_mib(pids: list[int]) -> float:
    """Proportional resident memory of a set of processes, MiB: a page shared by n of them counts
    1/n to each. PostgreSQL's summed RSS counts its shared buffers once per backend that touched
    them; its PSS counts them once."""
    return _memory_mib(pids, "smaps_rollup", "Pss:")


def _java_pid(pids: list[int]) -> int | None:
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "java":
                return pid
        except FileNotFoundError:
            continue
    return None


def jvm_heap_mib(pids: list[int]) -> dict[str, float | None]:
    """The Java process's heap from its own counters (`jstat -gc`): committed, and used in the
    old generation (what survived young collections, garbage included until G1 marks it)."""
    pid = _java_pid(pids)
    if pid is not None:
        out = subprocess.run(["jstat", "-gc", str(pid)], capture_output=True, text=True,
                             timeout=30, check=False).stdout.split()  # fmt: skip
        half = len(out) // 2
        gc = dict(zip(out[:half], out[half:], strict=True)) if half else {}
        if "OU" in gc:
            committed = sum(float(gc[k]) for k in ("S0C", "S1C", "EC", "OC"))
            return {"committed": committed / 1024, "old_used": float(gc["OU"]) / 1024}
    return {"committed": None, "old_used": None}


def live_set_mib(pids: list[int]) -> float | None:
    """The Java process's live heap: what a full collection (`jcmd GC.run`) leaves. A leak
    grows it; garbage does not. Two probes only (start and end of the growth window): each
    stops the job's JVM for a moment."""
    pid = _java_pid(pids)
    if pid is None:
        return None
    subprocess.run(["jcmd", str(pid), "GC.run"], capture_output=True, timeout=60, check=False)
    return jvm_heap_mib([pid])["old_used"]


def _mib(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"


def service_pids(name: str) -> list[int]:
    pid = int(supervisor.ctl("pid", name).stdout.strip() or 0)
    return descendants(pid) if pid > 0 else []


def chart(rows: list[dict], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no chart (pip install matplotlib for one)"
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    minutes = [row["elapsed_s"] / 60 for row in rows]
    top.plot(minutes, [row["lag"] for row in rows])
    top.set_ylabel("lag (messages)")
    for name in ("job", "producer", "postgres", "kafka"):
        bottom.plot(minutes, [row[f"{name}_mib"] for row in rows], label=name)
    bottom.set_ylabel("RSS (MiB)")
    bottom.set_xlabel("minutes")
    bottom.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    return f"chart {path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="readings per second")
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to produce")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--customers", type=int, default=100)
    args = parser.parse_args(argv)

    scrub_ambient_libpq()
    stack = load().model_copy(update={"pg_database": "heartbeat_soak"})
    database.bootstrap(stack)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    topic = f"soak-{stamp}"
    workdir = var_dir() / "soak" / stamp
    workdir.mkdir(parents=True, exist_ok=True)
    admin = admin_client(stack)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])

    job = harness.SupervisedJob(
        StreamJob(
            stack,
            topic,
            str(workdir / "checkpoint"),
            workdir / "job.log",
            # The product's own trigger (the tests' StreamJob sets a slower one): the soak
            # measures the job as `make up` runs it.
            HEARTBEAT_TRIGGER_INTERVAL=Settings.model_fields["trigger_interval"].default,
        )
    )
    job.start()
    producer = harness.SteadyProducer(stack, topic, workdir, prefix="S", rate=args.rate,
                                      customers=args.customers, malformed_rate=0.01)  # fmt: skip
    print(
        f"soak: {args.rate:g} readings/s for {args.minutes:g} min into {topic}; logs in {workdir}"
    )
    print(f"{'min':>6} {'lag':>8} {'job MiB':>8} {'prod MiB':>8} {'pg MiB':>8} {'kafka MiB':>9}"
          f" {'heap MiB':>8} {'old gen':>8}")  # fmt: skip
    rows: list[dict] = []
    started = time.monotonic()
    deadline = started + args.minutes * 60
    try:
        live_sets: list[float | None] = []
        window_start = max(started, deadline - GROWTH_WINDOW_S)
        while time.monotonic() < deadline:
            job_pids = job.pids()
            heap = jvm_heap_mib(job_pids)
            row = {
                "elapsed_s": round(time.monotonic() - started, 1),
                "lag": harness.lag(stack, topic),
                "job_mib": round(rss_mib(job_pids), 1),
                "job_heap_committed_mib": heap["committed"],
                "job_old_gen_used_mib": heap["old_used"],
                "producer_mib": round(rss_mib([producer.process.pid]), 1),
                "postgres_mib": round(rss_mib(service_pids("postgres")), 1),
                "postgres_pss_mib": round(pss_mib(service_pids("postgres")), 1),
                "kafka_mib": round(rss_mib(service_pids("kafka")), 1),
            }
            rows.append(row)
            # The live-set probe is a full collection, which gives heap back: sampled after the
            # window's first row, so the growth is not measured from a freshly shrunk heap.
            if not live_sets and time.monotonic() >= window_start:
                live_sets.append(live_set_mib(job_pids))
            print(f"{row['elapsed_s'] / 60:6.1f} {row['lag'] if row['lag'] is not None else '?':>8}"
                  f" {row['job_mib']:8.0f} {row['producer_mib']:8.0f} {row['postgres_mib']:8.0f}"
                  f" {row['kafka_mib']:9.0f} {_mib(row['job_heap_committed_mib']):>8}"
                  f" {_mib(row['job_old_gen_used_mib']):>8}", flush=True)  # fmt: skip
            time.sleep(args.interval)  # the sampling interval
        live_sets.append(live_set_mib(job.pids()))
        ledger = producer.stop()
        report, drained = wait_until_balanced(stack, topic, Expected.from_ledgers([ledger]),
                                              timeout=600)  # fmt: skip
    finally:
        producer.kill()
        job.stop()
        admin.delete_topics([topic])
        admin.close()

    csv_path = var_dir() / "log" / f"soak-{stamp}.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lags = [r["lag"] for r in rows if r["lag"] is not None]
    settled = rows[len(rows) // 10 :] or rows  # after the first tenth: the job's start is behind
    print(f"\nlag: median {sorted(lags)[len(lags) // 2]}, max {max(lags)} messages")
    window = [r for r in rows if r["elapsed_s"] >= rows[-1]["elapsed_s"] - GROWTH_WINDOW_S]
    for name in ("job", "producer", "postgres", "postgres_pss", "kafka"):
        first, last = settled[0][f"{name}_mib"], settled[-1][f"{name}_mib"]
        peak = max(r[f"{name}_mib"] for r in rows)
        start, end = window[0][f"{name}_mib"], window[-1][f"{name}_mib"]
        growth = f"{(end - start) / start:+.1%}" if start else "?"
        measure, process = ("PSS", "postgres") if name == "postgres_pss" else ("RSS", name)
        print(f"{measure} {process:<9} {first:7.0f} -> {last:7.0f} MiB (peak {peak:.0f});"
              f" last {GROWTH_WINDOW_S // 60} min {start:.0f} -> {end:.0f} ({growth})")  # fmt: skip
    live = " / ".join(_mib(v) for v in live_sets)
    print(f"job live heap after a full collection, start / end of the last"
          f" {GROWTH_WINDOW_S // 60} min: {live} MiB")  # fmt: skip
    old = [r["job_old_gen_used_mib"] for r in window if r["job_old_gen_used_mib"] is not None]
    if old:
        print(f"job old generation used, last {GROWTH_WINDOW_S // 60} min: {old[0]:.0f} ->"
              f" {old[-1]:.0f} MiB (max {max(old):.0f})")  # fmt: skip
    print(f"job starts: {job.starts}; drained {drained:.0f}s after the producer stopped")
    print(f"ledger: {report.summary()} -> {'OK' if report.ok else 'MISMATCH'}")
    if not report.ok:
        print(report.explain())
    print(f"samples {csv_path}; {chart(rows, var_dir() / 'log' / f'soak-{stamp}.png')}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
