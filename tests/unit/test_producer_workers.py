"""Sharding the population over worker processes: who produces what, and one merged ledger."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from itertools import pairwise

import pytest

from heartbeat_producer.config import RunSettings, SimulationConfig
from heartbeat_producer.ledger import Ledger, merge_snapshots
from heartbeat_producer.simulator import VALID, Message, Simulator
from heartbeat_producer.workers import (
    AUTO_WORKERS_FROM_RATE,
    MAX_AUTO_WORKERS,
    auto_workers,
    shard_counts,
)

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)


def sharded(config: SimulationConfig, rate: float, shards: int, n: int) -> list[list[Message]]:
    counts = shard_counts(n, config.customers, shards)
    return [
        Simulator(config, start=START, rate=rate, shard=(index, shards)).take(count)
        for index, count in enumerate(counts)
    ]


@pytest.mark.parametrize(("count", "customers", "shards"), [(200_000, 100, 2), (1001, 7, 3),
                                                            (5, 100, 4), (0, 3, 3)])  # fmt: skip
def test_shard_counts_add_up_and_follow_the_customers(count, customers, shards):
    counts = shard_counts(count, customers, shards)
    assert sum(counts) == count and len(counts) == shards
    sizes = [len(range(i, customers, shards)) for i in range(shards)]
    for share, size in zip(counts, sizes, strict=True):
        assert abs(share - count * size / customers) < 1


def test_auto_workers_one_for_the_live_feed_one_per_core_above_the_threshold(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert auto_workers(100.0, 100) == 1
    assert auto_workers(AUTO_WORKERS_FROM_RATE - 1, 100) == 1
    assert auto_workers(AUTO_WORKERS_FROM_RATE, 100) == MAX_AUTO_WORKERS
    assert auto_workers(1e9, 3) == 3  # never more workers than customers
    monkeypatch.setattr("os.cpu_count", lambda: None)
    assert auto_workers(1e9, 100) == 1


def test_one_shard_is_the_whole_population_byte_for_byte():
    config = SimulationConfig(seed=3, malformed_rate=0.01, critical_rate=5.0)
    whole = Simulator(config, start=START, rate=3333.3).take(5000)
    (only,) = sharded(config, 3333.3, 1, 5000)
    assert only == whole


def test_shards_split_the_customers_and_keep_each_customers_cadence():
    config = SimulationConfig(customers=10, seed=4)
    shards = sharded(config, rate=1000.0, shards=3, n=3000)
    owners = [{m.customer_id for m in shard} for shard in shards]
    assert set().union(*owners) == set(Simulator(config, start=START).ids)
    assert sum(len(o) for o in owners) == 10  # disjoint: one producer per customer
    assert [len(shard) for shard in shards] == [1200, 900, 900]  # 4, 3 and 3 customers
    for shard in shards:
        times: dict[str, list[int]] = defaultdict(list)
        for message in shard:
            times[message.customer_id].append(message.timestamp_ms)
        for stamps in times.values():  # 10 customers at 1,000/s: one reading each 10 ms
            assert {b - a for a, b in pairwise(stamps)} == {10}


def test_shards_draw_their_own_hearts_but_keep_the_mix():
    config = SimulationConfig(seed=5, malformed_rate=0.01, invalid_rate=0.005)
    shards = sharded(config, rate=1e9, shards=2, n=100_000)
    first = {m.customer_id: m.heart_rate for m in shards[0][:50]}
    whole = {m.customer_id: m.heart_rate for m in Simulator(config, start=START).take(100)}
    assert first != {c: whole[c] for c in first}  # not the single process's curves replayed
    outcomes = Counter(m.outcome for shard in shards for m in shard)
    malformed = sum(n for outcome, n in outcomes.items() if outcome not in (VALID, "out_of_range"))
    assert malformed == 1000  # exact per shard, so exact in sum at whole blocks
    assert outcomes["out_of_range"] >= 500  # glitches, plus the seeded critical episodes


def test_merged_snapshots_add_every_count():
    config = SimulationConfig(seed=6, malformed_rate=0.1)
    ledgers = [Ledger(), Ledger()]
    for ledger, shard in zip(ledgers, sharded(config, 1e9, 2, 400), strict=True):
        ledger.generated(len(shard))
        ledger.acknowledged_all(shard[:-10])
        for message in shard[-10:]:
            ledger.failed(message, TimeoutError("delivery timed out"))
    merged = merge_snapshots([ledger.snapshot() for ledger in ledgers])
    assert (merged.generated, merged.sent, merged.failed, merged.unconfirmed) == (400, 380, 20, 0)
    assert merged.errors == {"TimeoutError": 20}
    assert sum(merged.outcomes().values()) == 380
    assert len(merged.customers()) == 100


def test_workers_must_be_positive():
    with pytest.raises(ValueError, match="workers"):
        RunSettings(rate=1.0, workers=0)
