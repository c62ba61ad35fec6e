"""Producer throughput: `heartbeat-producer` for a whole run beside kafka-python's own send rate.

In one run, each on a fresh 3-partition topic, with the default mix and publisher settings
(acks=all, idempotent, the CLI's linger, batch size and compression):
- the client alone: the very messages the CLI sends (same simulator, seed, start and shards),
  encoded beforehand, sent by one KafkaProducer with no callbacks, then flushed;
- the CLI, `heartbeat-producer --rate <unlimited> --count N` as a subprocess, with its default
  workers and with one: the ledger's rate (first reading to the last acknowledgement, flush
  included) and the process's (start-up and exit included);
- the ratio CLI / client, the CPU each spent per reading, and `uptime`'s load before and after,
  since other work on the machine moves every rate here.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaProducer

from heartbeat_producer.config import PublisherSettings, SimulationConfig
from heartbeat_producer.simulator import Message, Simulator
from heartbeat_producer.workers import auto_workers, shard_counts
from tests.support.kafka import create_topic, delete_topics

READINGS = int(os.environ.get("BENCH_PRODUCER_READINGS", "200000"))
UNLIMITED = 1e9  # readings/s: the pacer never waits
SEED = 1
CUSTOMERS = SimulationConfig().customers


def run() -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "localhost:9092"
    start = datetime.now(UTC).replace(microsecond=0)
    workers = auto_workers(UNLIMITED, CUSTOMERS)
    publishing = PublisherSettings(bootstrap_servers=bootstrap)
    print(f"{READINGS:,} readings, {CUSTOMERS} customers, default mix, acks=all, idempotent, "
          f"linger {publishing.linger_ms} ms, batch {publishing.batch_size // 1024} KiB, "
          f"{publishing.compression}; load before: {_load()}")  # fmt: skip
    topics: list[str] = []

    def fresh_topic() -> str:
        topics.append(f"bench-producer-{uuid.uuid4().hex[:8]}")
        create_topic(bootstrap, topics[-1])  # the producer principal writes it
        return topics[-1]

    try:
        messages = cli_messages(start, workers)
        client = client_rate(messages, publishing, fresh_topic())
        print(f"{'kafka-python alone (pre-encoded)':<36} {client[0]:>9,.0f}/s "
              f"{client[1]:>6.1f} us CPU/reading", flush=True)  # fmt: skip
        for count in (workers, 1):
            cli = cli_rate(bootstrap, fresh_topic(), start, count)
            print(f"{f'heartbeat-producer, {count} worker(s)':<36} {cli['rate']:>9,.0f}/s "
                  f"{cli['cpu_us']:>6.1f} us CPU/reading  = {cli['rate'] / client[0]:.2f}x the "
                  f"client; whole process {cli['process_rate']:,.0f}/s "
                  f"({cli['wall']:.1f} s); sent {cli['sent']:,}, failed {cli['failed']}",
                  flush=True)  # fmt: skip
            if count == workers == 1:
                break
    finally:
        delete_topics(bootstrap, *topics)
    print(f"load after: {_load()}")


def cli_messages(start: datetime, workers: int) -> list[Message]:
    """What `heartbeat-producer --count READINGS --seed SEED --start start` sends, in shards."""
    config = SimulationConfig(seed=SEED)
    counts = shard_counts(READINGS, config.customers, workers)
    return [
        message
        for index, count in enumerate(counts)
        for message in Simulator(config, start=start, rate=UNLIMITED, shard=(index, workers)).take(
            count
        )
    ]


def client_rate(
    messages: list[Message], publishing: PublisherSettings, topic: str
) -> tuple[float, float]:
    """(readings/s, CPU us per reading) of one KafkaProducer sending pre-encoded messages."""
    producer = KafkaProducer(
        bootstrap_servers=publishing.bootstrap_servers.split(","),
        **publishing.security,
        acks="all",
        enable_idempotence=True,
        linger_ms=publishing.linger_ms,
        batch_size=publishing.batch_size,
        compression_type=publishing.compression,
        max_block_ms=publishing.max_block_ms,
    )
    producer.partitions_for(topic)
    pairs = [(m.key, m.value) for m in messages]
    send = producer.send
    cpu, began = time.process_time(), time.monotonic()
    for key, value in pairs:
        send(topic, value=value, key=key)
    producer.flush()
    elapsed, cpu = time.monotonic() - began, time.process_time() - cpu
    producer.close()
    return len(pairs) / elapsed, cpu / len(pairs) * 1e6


def cli_rate(bootstrap: str, topic: str, start: datetime, workers: int) -> dict[str, float]:
    """The CLI's own figures from its ledger, and the whole process's from outside."""
    with tempfile.TemporaryDirectory() as folder:
        ledger = Path(folder) / "ledger.json"
        command = [
            sys.executable, "-m", "heartbeat_producer", "--bootstrap-servers", bootstrap,
            "--topic", topic, "--rate", f"{UNLIMITED:.0f}", "--count", str(READINGS),
            "--seed", str(SEED), "--start", start.isoformat(), "--workers", str(workers),
            "--ledger", str(ledger), "--log-level", "WARNING",
        ]  # fmt: skip
        cpu = _children_cpu()
        began = time.monotonic()
        subprocess.run(command, check=True)
        wall = time.monotonic() - began
        cpu = _children_cpu() - cpu
        document = json.loads(ledger.read_text())
    return {
        "rate": document["sent"] / document["elapsed_seconds"],
        "process_rate": document["sent"] / wall,
        "wall": wall,
        "cpu_us": cpu / READINGS * 1e6,
        "sent": document["sent"],
        "failed": document["failed"],
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
