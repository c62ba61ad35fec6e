"""docs/scaling.md's arithmetic (benchmarks/cost_model.py): from measured inputs to resources,
checked by hand on round numbers, and the inputs read from the benchmarks' JSON as written."""

from __future__ import annotations

import json

import pytest

from benchmarks import cost_model
from benchmarks.cost_model import Measured, plan

pytestmark = pytest.mark.unit

ROUND = Measured(
    kafka_bytes_per_reading=10.0,
    pg_bytes_per_reading=200.0,
    minute_row_bytes=300.0,
    hour_row_bytes=400.0,
    copy_rows_per_s=100_000.0,
    commit_rows_per_s=50_000.0,
    stage_rows_per_core=20_000.0,
    read_rows_per_core=200_000.0,
    classify_rows_per_core=100_000.0,
    merge_rows_per_s=150_000.0,
)


def test_a_hundred_thousand_customers_by_hand() -> None:
    p = plan(100_000, ROUND)
    assert p.readings_per_s == 100_000
    assert p.spark_cores == 10  # 100,000/s x 2 (headroom) / 20,000 per core
    assert p.kafka_partitions == 10
    assert p.kafka_brokers == 3
    assert p.kafka_mb_per_s == pytest.approx(1.0)  # 100,000 x 10 B
    assert p.kafka_gb_per_day == pytest.approx(100_000 * 86_400 * 10 * 3 / 1e9)  # 259.2
    assert p.kafka_gb_retained == pytest.approx(p.kafka_gb_per_day * 7)
    assert p.commit_share == pytest.approx(2.0)  # twice what one transaction can take
    assert p.copy_share == pytest.approx(1.0)
    assert p.pg_raw_gb_per_day == pytest.approx(100_000 * 86_400 * 200 / 1e9)  # 1,728
    assert p.pg_raw_gb_retained == pytest.approx(p.pg_raw_gb_per_day * 31)
    per_customer_day = 1440 * 300 + 24 * 400
    assert p.pg_rollup_gb_per_day == pytest.approx(100_000 * per_customer_day / 1e9)
    assert p.pg_rollup_gb_per_year == pytest.approx(p.pg_rollup_gb_per_day * 365)


def test_small_counts_keep_three_partitions_and_one_core() -> None:
    p = plan(100, ROUND)
    assert p.spark_cores == 1 and p.kafka_partitions == 3


def test_cores_round_up() -> None:
    assert plan(10_001, ROUND).spark_cores == 2  # 20,002 / 20,000 per core


def test_one_primary_limit_is_the_transaction_rate() -> None:
    assert cost_model.one_primary_limit(ROUND) == 50_000


def _results(tmp_path):
    storage = {
        name: {"rows": rows, "table_bytes": 0, "index_bytes": 0, "total_bytes": total}
        for name, rows, total in (
            ("heart_rate_readings", 1000, 250_000),
            ("heart_rate_minute", 10, 5_000),
            ("heart_rate_hour", 2, 1_200),
        )
    }
    workers = {
        "date": "2026-12-01 18:00 UTC",
        "backlog": 1000,
        "kafka_log_bytes": 9_700,
        "drains": [
            {"storage": storage, "lap_rates": {"stage": 9_000.0, "commit": 30_000.0}},
            {"storage": {}, "lap_rates": {"stage": 9_000.0, "commit": 50_000.0}},
        ],
    }
    stages = {
        "date": "2026-12-01 18:30 UTC",
        "copy": 120_000.0,
        "spark": {
            "read": {"median": 300_000.0},
            "classify": {"median": 90_000.0},
            "stage_write": {"median": 30_000.0},
        },
        "rollup_merge": {"existing_minutes": 80_000.0},
    }
    paths = tmp_path / "workers.json", tmp_path / "stages.json"
    for path, data in zip(paths, (workers, stages), strict=True):
        path.write_text(json.dumps(data))
    return paths


def test_inputs_come_from_the_benchmarks_json(tmp_path) -> None:
    workers, stages = (json.loads(p.read_text()) for p in _results(tmp_path))
    m = Measured.from_results(workers, stages)
    assert m.kafka_bytes_per_reading == pytest.approx(9.7)
    assert m.pg_bytes_per_reading == 250
    assert (m.minute_row_bytes, m.hour_row_bytes) == (500, 600)
    assert m.copy_rows_per_s == 120_000 and m.commit_rows_per_s == 40_000
    assert m.stage_rows_per_core == 30_000 and m.read_rows_per_core == 300_000
    assert m.classify_rows_per_core == 90_000 and m.merge_rows_per_s == 80_000


def test_main_prints_inputs_and_a_column_per_customer_count(tmp_path, capsys) -> None:
    assert cost_model.main([str(p) for p in _results(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| 10,000 customers | 100,000 customers | 1,000,000 customers |" in out
    # 1M readings/s x 2 / 30,000 per core = 66.7 -> 67 cores
    assert "| Spark cores = ceil(readings/s x 2 / 30,000) | 1 | 7 | 67 |" in out
    assert "busy all the time at 40,000 customers" in out
