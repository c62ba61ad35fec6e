"""Producer throughput: simulated readings published to Kafka, acknowledged, per second.

Runs the real producer path (simulator -> pacer -> kafka-python, acks=all, idempotent) with no
rate limit on a fresh 3-partition topic, once per batching/compression setting, and prints the
sustained acknowledged readings/s of each. The topic is deleted at the end.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import replace

from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from heartbeat_producer.config import PublisherSettings, RunSettings, SimulationConfig
from heartbeat_producer.publisher import available_compression
from heartbeat_producer.runner import run as produce

READINGS = int(os.environ.get("BENCH_PRODUCER_READINGS", "200000"))
UNLIMITED = 1e9  # readings/s: the pacer never waits
# (linger_ms, batch_size, compression): kafka-python's defaults first, then larger batches.
SETTINGS = [
    (0, 16 * 1024, "none"),
    (5, 64 * 1024, "none"),
    (20, 256 * 1024, "none"),
    (20, 256 * 1024, "gzip"),
    (50, 1024 * 1024, "gzip"),
]


def run() -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "localhost:9092"
    topic = f"bench-producer-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    simulation = SimulationConfig(seed=1, malformed_rate=0.001)
    base = PublisherSettings(bootstrap_servers=bootstrap, topic=topic)
    codecs = set(available_compression())
    print(f"{READINGS:,} readings per setting, 100 customers, acks=all, idempotent, 3 partitions")
    print(f"{'linger_ms':>9} {'batch_size':>10} {'compression':>11} {'readings/s':>11} "
          f"{'sent':>8} {'failed':>6}")  # fmt: skip
    results = []
    try:
        for linger_ms, batch_size, compression in SETTINGS:
            if compression not in codecs:
                continue
            publishing = replace(
                base, linger_ms=linger_ms, batch_size=batch_size, compression=compression
            )
            report = produce(simulation, publishing, RunSettings(rate=UNLIMITED, count=READINGS))
            rate = report.snapshot.sent / report.elapsed
            results.append((rate, linger_ms, batch_size, compression))
            print(f"{linger_ms:>9} {batch_size:>10} {compression:>11} {rate:>11,.0f} "
                  f"{report.snapshot.sent:>8} {report.snapshot.failed:>6}", flush=True)  # fmt: skip
    finally:
        admin.delete_topics([topic])
        admin.close()
    best = max(results)
    print(f"best: {best[0]:,.0f} readings/s with linger_ms={best[1]} batch_size={best[2]} "
          f"compression={best[3]}")  # fmt: skip
