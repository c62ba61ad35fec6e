"""Alert events on a topic, read to its end offsets (tests.support.kafka), deduplicated as a
consumer of at-least-once delivery must."""

from __future__ import annotations

import json

from kafka import KafkaConsumer

from tests.support import kafka
from tests.support.kafka import client_args


def read_to_end(bootstrap_servers: str, topic: str, timeout: float = 120.0) -> list[dict]:
    """Every event on `topic` so far, parsed; none while the topic does not exist yet."""
    consumer = KafkaConsumer(**client_args(bootstrap_servers))
    try:
        exists = bool(consumer.partitions_for_topic(topic))
    finally:
        consumer.close()
    if not exists:
        return []
    return [json.loads(r.value) for r in kafka.read_to_end(bootstrap_servers, topic, timeout)]


def deduplicated(events: list[dict]) -> list[dict]:
    """At-least-once delivery: one event per event_id, the first copy, in order."""
    seen: dict[str, dict] = {}
    for event in events:
        seen.setdefault(str(event["event_id"]), event)
    return list(seen.values())
