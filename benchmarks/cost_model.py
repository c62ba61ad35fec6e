"""The cost model of docs/scaling.md: resources for N customers at one reading per second,
derived only from measured figures (spark_workers.json and spark_stages.json, written by
`make bench BENCH=spark_workers` and `make bench BENCH=spark_stages`).

    var/venv/bin/python -m benchmarks.cost_model var/bench/<t1>/spark_workers.json \\
        var/bench/<t2>/spark_stages.json

prints the measured inputs, then one table per customer count with each figure's arithmetic.
Not a benchmark itself (no `run()`): `make bench` skips it. The arithmetic is unit-tested
(tests/unit/test_cost_model.py), so the doc and this code cannot drift apart.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

SECONDS_PER_DAY = 86_400
CUSTOMER_COUNTS = (10_000, 100_000, 1_000_000)
# Assumptions, not measurements; each is named where it is used.
HEADROOM = 2.0  # the job drains at twice the ingest rate: an hour's outage is caught up in an hour
REPLICATION_FACTOR = 3  # issue 22 item 1: three brokers, min.insync.replicas=2
KAFKA_RETENTION_DAYS = 7  # the broker's log.retention.hours=168 (ops/heartbeat_ops/nodes.py)
RAW_RETENTION_DAYS = 30  # HEARTBEAT_RAW_RETENTION_DAYS' default; whole days: up to 31 kept
GB = 1e9


@dataclass(frozen=True)
class Measured:
    """Per reading, per core or per connection, as the benchmarks measured them."""

    kafka_bytes_per_reading: float  # the topic's log segments / messages (zstd batches)
    pg_bytes_per_reading: float  # heart_rate_readings, table and indexes, / its rows
    minute_row_bytes: float  # heart_rate_minute, table and indexes, / its rows
    hour_row_bytes: float  # heart_rate_hour, table and indexes, / its rows
    copy_rows_per_s: float  # COPY into a heart_rate_readings-shaped table, one connection
    commit_rows_per_s: float  # the batch transaction (move, rollups, alerts), one connection
    stage_rows_per_core: float  # Kafka read + classification + stage write, one Spark core
    read_rows_per_core: float
    classify_rows_per_core: float  # read + classification
    merge_rows_per_s: float  # rollup merge into existing minutes, one connection

    @classmethod
    def from_results(cls, workers: dict, stages: dict) -> Measured:
        """From the two benchmarks' JSON: storage from spark_workers' first drain, the commit
        lap's rate as the median over its drains (PostgreSQL's work, the same whatever the
        workers), the per-core rates and COPY from spark_stages."""
        drains = workers["drains"]
        size = drains[0]["storage"]

        def per_row(name: str) -> float:
            rows = size[name]["rows"]
            return size[name]["total_bytes"] / rows if rows else 0.0

        spark = stages["spark"]
        return cls(
            kafka_bytes_per_reading=workers["kafka_log_bytes"] / workers["backlog"],
            pg_bytes_per_reading=per_row("heart_rate_readings"),
            minute_row_bytes=per_row("heart_rate_minute"),
            hour_row_bytes=per_row("heart_rate_hour"),
            copy_rows_per_s=stages["copy"],
            commit_rows_per_s=statistics.median(d["lap_rates"]["commit"] for d in drains),
            stage_rows_per_core=spark["stage_write"]["median"],
            read_rows_per_core=spark["read"]["median"],
            classify_rows_per_core=spark["classify"]["median"],
            merge_rows_per_s=stages["rollup_merge"]["existing_minutes"],
        )


@dataclass(frozen=True)
class Plan:
    """What N customers at one reading per second need, from Measured."""

    customers: int
    readings_per_s: float
    spark_cores: int
    kafka_partitions: int
    kafka_brokers: int
    kafka_mb_per_s: float  # into the leaders, before replication
    kafka_gb_per_day: float  # on disk, every replica
    kafka_gb_retained: float
    commit_share: float  # of one job's batch transaction capacity
    copy_share: float  # of one connection's COPY
    pg_raw_gb_per_day: float
    pg_raw_gb_retained: float
    pg_rollup_gb_per_day: float
    pg_rollup_gb_per_year: float


def plan(customers: int, m: Measured) -> Plan:
    rate = float(customers)  # one reading per second each
    cores = max(1, math.ceil(rate * HEADROOM / m.stage_rows_per_core))
    partitions = max(3, cores)  # one Spark task per partition: at least one per core
    kafka_day = rate * SECONDS_PER_DAY * m.kafka_bytes_per_reading * REPLICATION_FACTOR
    raw_day = rate * SECONDS_PER_DAY * m.pg_bytes_per_reading
    rollup_day = customers * (1440 * m.minute_row_bytes + 24 * m.hour_row_bytes)
    return Plan(
        customers=customers,
        readings_per_s=rate,
        spark_cores=cores,
        kafka_partitions=partitions,
        kafka_brokers=REPLICATION_FACTOR,
        kafka_mb_per_s=rate * m.kafka_bytes_per_reading / 1e6,
        kafka_gb_per_day=kafka_day / GB,
        kafka_gb_retained=kafka_day * KAFKA_RETENTION_DAYS / GB,
        commit_share=rate / m.commit_rows_per_s,
        copy_share=rate / m.copy_rows_per_s,
        pg_raw_gb_per_day=raw_day / GB,
        pg_raw_gb_retained=raw_day * (RAW_RETENTION_DAYS + 1) / GB,
        pg_rollup_gb_per_day=rollup_day / GB,
        pg_rollup_gb_per_year=rollup_day * 365 / GB,
    )


def one_primary_limit(m: Measured) -> float:
    """Customers (at 1 reading/s) at which one job's batch transaction is busy all the time:
    the point where one PostgreSQL primary, written by one serial transaction, stops keeping up."""
    return m.commit_rows_per_s


def inputs_markdown(m: Measured) -> list[str]:
    return [
        "| measured input | value |",
        "|---|---|",
        f"| Kafka, bytes per reading on disk (log segments / messages) | {m.kafka_bytes_per_reading:.1f} |",  # noqa: E501
        f"| PostgreSQL, bytes per stored reading (heart_rate_readings + indexes) | {m.pg_bytes_per_reading:.0f} |",  # noqa: E501
        f"| PostgreSQL, bytes per minute rollup row / hour rollup row | {m.minute_row_bytes:.0f} / {m.hour_row_bytes:.0f} |",  # noqa: E501
        f"| Spark, one core: Kafka read | {m.read_rows_per_core:,.0f} readings/s |",
        f"| Spark, one core: read + classification | {m.classify_rows_per_core:,.0f} readings/s |",
        f"| Spark, one core: read + classification + stage write | {m.stage_rows_per_core:,.0f} readings/s |",  # noqa: E501
        f"| PostgreSQL, one connection: COPY | {m.copy_rows_per_s:,.0f} rows/s |",
        f"| PostgreSQL, one connection: the batch transaction (commit lap) | {m.commit_rows_per_s:,.0f} rows/s |",  # noqa: E501
        f"| PostgreSQL, one connection: rollup merge into existing minutes | {m.merge_rows_per_s:,.0f} rows/s |",  # noqa: E501
    ]


def _measured(value: float, text: str) -> str:
    """`text`, or "not measured" when its input is 0 (a benchmark that did not record it)."""
    return text if value > 0 else "not measured"


def plans_markdown(m: Measured) -> list[str]:
    plans = [plan(n, m) for n in CUSTOMER_COUNTS]
    rows = [
        ("readings/s", lambda p: f"{p.readings_per_s:,.0f}"),
        (f"Spark cores = ceil(readings/s x {HEADROOM:g} / {m.stage_rows_per_core:,.0f})",
         lambda p: f"{p.spark_cores:,}"),
        ("Kafka partitions = max(3, Spark cores)", lambda p: f"{p.kafka_partitions:,}"),
        (f"Kafka brokers (replication factor {REPLICATION_FACTOR})",
         lambda p: f"{p.kafka_brokers}"),
        (f"Kafka in, MB/s = readings/s x {m.kafka_bytes_per_reading:.1f} B",
         lambda p: f"{p.kafka_mb_per_s:,.2f}"),
        (f"Kafka disk, GB/day (x {REPLICATION_FACTOR} replicas)",
         lambda p: f"{p.kafka_gb_per_day:,.1f}"),
        (f"Kafka disk, GB at {KAFKA_RETENTION_DAYS} days' retention",
         lambda p: f"{p.kafka_gb_retained:,.1f}"),
        (f"share of one job's batch transaction ({m.commit_rows_per_s:,.0f} rows/s)",
         lambda p: f"{p.commit_share:.0%}"),
        (f"share of one connection's COPY ({m.copy_rows_per_s:,.0f} rows/s)",
         lambda p: f"{p.copy_share:.0%}"),
        (f"PostgreSQL raw readings, GB/day (x {m.pg_bytes_per_reading:.0f} B)",
         lambda p: f"{p.pg_raw_gb_per_day:,.1f}"),
        (f"PostgreSQL raw readings, GB kept ({RAW_RETENTION_DAYS} + 1 days)",
         lambda p: f"{p.pg_raw_gb_retained:,.0f}"),
        ("PostgreSQL rollups, GB/day (1,440 minute + 24 hour rows per customer)",
         lambda p: _measured(m.minute_row_bytes, f"{p.pg_rollup_gb_per_day:,.2f}")),
        ("PostgreSQL rollups, GB per year (kept forever)",
         lambda p: _measured(m.minute_row_bytes, f"{p.pg_rollup_gb_per_year:,.0f}")),
    ]  # fmt: skip
    header = "| | " + " | ".join(f"{p.customers:,} customers" for p in plans) + " |"
    lines = [header, "|---" * (len(plans) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cell(p) for p in plans) + " |" for name, cell in rows]
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    workers, stages = (json.loads(Path(path).read_text()) for path in argv)
    m = Measured.from_results(workers, stages)
    print(f"inputs: spark_workers {workers['date']}, spark_stages {stages['date']}\n")
    print("\n".join(inputs_markdown(m)))
    print()
    print("\n".join(plans_markdown(m)))
    print(
        f"\none job's batch transaction is busy all the time at {one_primary_limit(m):,.0f}"
        " customers (readings/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
