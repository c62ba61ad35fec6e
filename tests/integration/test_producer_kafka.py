"""The producer against the real broker: every reading arrives exactly once, keyed by customer,
with a contract-valid body; and SIGTERM flushes what was buffered without duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from heartbeat_contract import (
    CUSTOMER_ID,
    HEART_RATE,
    MAX_CUSTOMER_ID_LENGTH,
    MAX_VALID_BPM,
    MIN_VALID_BPM,
    TIMESTAMP,
)
from heartbeat_producer.config import SimulationConfig
from heartbeat_producer.mix import known_mix
from heartbeat_producer.publisher import send_all
from heartbeat_producer.simulator import VALID, Simulator
from heartbeat_producer.workers import shard_counts
from tests.support.kafka import read_to_end, topic_end
from tests.support.stream_job import wait_for
from tests.support.world import CUSTOMER_PREFIX

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0


def producer_command(bootstrap_servers: str, topic: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "heartbeat_producer", "--bootstrap-servers", bootstrap_servers,
            "--topic", topic, "--progress-interval", "1", "--customer-prefix", CUSTOMER_PREFIX,
            *args]  # fmt: skip


def assert_valid_body(record) -> None:
    body = json.loads(record.value)
    assert isinstance(body[CUSTOMER_ID], str)
    assert 1 <= len(body[CUSTOMER_ID]) <= MAX_CUSTOMER_ID_LENGTH
    assert type(body[HEART_RATE]) is int
    assert MIN_VALID_BPM <= body[HEART_RATE] <= MAX_VALID_BPM
    assert datetime.fromisoformat(body[TIMESTAMP].replace("Z", "+00:00")).tzinfo is not None
    assert record.key == body[CUSTOMER_ID].encode()


def test_cli_readings_arrive_exactly_once_keyed_and_ordered_per_customer(
    stack, fresh_topic, tmp_path
):
    ledger_path = tmp_path / "ledger.json"
    start = "2026-11-29T20:00:00.000+00:00"
    count, rate, seed = 5000, 5000.0, 17
    completed = subprocess.run(
        producer_command(stack.kafka_bootstrap_servers, fresh_topic, "--count", str(count),
                         "--rate", str(rate), "--seed", str(seed), "--start", start,
                         "--malformed-rate", "0.02", "--ledger", str(ledger_path)),
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    ledger = json.loads(ledger_path.read_text())
    assert (ledger["generated"], ledger["sent"], ledger["failed"]) == (count, count, 0)
    assert ledger["idempotent"] is True

    # The run is reproducible: the same seed, start and rate give the same bytes, in order.
    config = SimulationConfig(seed=seed, malformed_rate=0.02, customer_prefix=CUSTOMER_PREFIX)
    expected = Simulator(config, start=datetime.fromisoformat(start), rate=rate).take(count)
    assert Counter(m.outcome for m in expected) == ledger["outcomes"]

    records = read_to_end(stack.kafka_bootstrap_servers, fresh_topic)
    assert len(records) == count
    assert Counter((r.key, r.value) for r in records) == Counter((m.key, m.value) for m in expected)
    outcome_of = {(m.key, m.value): m.outcome for m in expected}
    partitions_of: dict[bytes, set[int]] = defaultdict(set)
    per_customer: dict[bytes, list] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        partitions_of[record.key].add(record.partition)
        per_customer[record.key].append(record)
        if outcome_of[record.key, record.value] == VALID:
            assert_valid_body(record)
    assert all(len(p) == 1 for p in partitions_of.values())  # one customer, one partition
    expected_order: dict[bytes, list[bytes]] = defaultdict(list)
    for message in expected:
        expected_order[message.key].append(message.value)
    for key, records_of_customer in per_customer.items():
        assert [r.value for r in records_of_customer] == expected_order[key]


def test_cli_workers_each_send_their_own_customers_exactly_once_in_order(
    stack, fresh_topic, tmp_path
):
    """--workers 2: two processes, two idempotent producers, one ledger; the topic holds
    exactly the two shards' readings, each customer's from one producer, in order."""
    ledger_path = tmp_path / "ledger.json"
    start = "2026-11-29T20:00:00.000+00:00"
    count, rate, seed = 6001, 6000.0, 23
    completed = subprocess.run(
        producer_command(stack.kafka_bootstrap_servers, fresh_topic, "--count", str(count),
                         "--rate", str(rate), "--seed", str(seed), "--start", start,
                         "--workers", "2", "--malformed-rate", "0.02",
                         "--ledger", str(ledger_path)),
        capture_output=True, text=True, timeout=180, cwd=ROOT,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    ledger = json.loads(ledger_path.read_text())
    assert (ledger["generated"], ledger["sent"], ledger["failed"]) == (count, count, 0)
    assert ledger["idempotent"] is True and ledger["workers"] == 2 and ledger["finished"]

    config = SimulationConfig(seed=seed, malformed_rate=0.02, customer_prefix=CUSTOMER_PREFIX)
    expected = [
        message
        for index, share in enumerate(shard_counts(count, config.customers, 2))
        for message in Simulator(
            config, start=datetime.fromisoformat(start), rate=rate, shard=(index, 2)
        ).take(share)
    ]
    assert Counter(m.outcome for m in expected) == ledger["outcomes"]
    records = read_to_end(stack.kafka_bootstrap_servers, fresh_topic)
    assert Counter((r.key, r.value) for r in records) == Counter((m.key, m.value) for m in expected)
    expected_order: dict[bytes, list[bytes]] = defaultdict(list)
    for message in expected:
        expected_order[message.key].append(message.value)
    got_order: dict[bytes, list[bytes]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        got_order[record.key].append(record.value)
    assert got_order == expected_order
    assert Counter(r.key.decode() for r in records) == {
        customer: sum(outcomes.values()) for customer, outcomes in ledger["customers"].items()
    }


def test_known_mix_round_trip_with_send_all(stack, fresh_topic):
    messages = known_mix(seed=5, n=400, customer_prefix=CUSTOMER_PREFIX)
    ledger = send_all(messages, bootstrap_servers=stack.kafka_bootstrap_servers, topic=fresh_topic)
    snapshot = ledger.snapshot()
    assert (snapshot.sent, snapshot.failed, snapshot.unconfirmed) == (400, 0, 0)
    records = read_to_end(stack.kafka_bootstrap_servers, fresh_topic)
    assert sorted((r.key, r.value) for r in records) == sorted((m.key, m.value) for m in messages)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_flushes_buffered_readings_and_exits_zero(stack, fresh_topic, tmp_path, workers):
    ledger_path = tmp_path / "ledger.json"
    process = subprocess.Popen(
        producer_command(stack.kafka_bootstrap_servers, fresh_topic, "--rate", "20000",
                         "--workers", workers, "--ledger", str(ledger_path)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:

        def got_going() -> bool:
            assert process.poll() is None, process.communicate()[1]
            return (topic_end(stack.kafka_bootstrap_servers, fresh_topic) or 0) >= 5000

        wait_for(got_going, TIMEOUT, "the producer to get going", poll=0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "stopped by SIGTERM" in stderr

    ledger = json.loads(ledger_path.read_text())
    assert ledger["finished"] is True and ledger["stopped_by"] == "SIGTERM"
    assert ledger["failed"] == 0 and ledger["unconfirmed"] == 0
    assert ledger["sent"] == ledger["generated"] >= 5000
    assert ledger["idempotent"] is True

    records = read_to_end(stack.kafka_bootstrap_servers, fresh_topic)
    assert len(records) >= ledger["sent"]  # nothing acknowledged was lost
    assert len(records) == ledger["sent"]  # and nothing was written twice (idempotent producer)
    assert len({(r.key, r.value) for r in records}) == len(records)
    by_customer = Counter(r.key.decode() for r in records)
    assert by_customer == {
        customer: sum(outcomes.values()) for customer, outcomes in ledger["customers"].items()
    }
    assert datetime.fromisoformat(ledger["start"].replace("Z", "+00:00")) <= datetime.now(UTC)
