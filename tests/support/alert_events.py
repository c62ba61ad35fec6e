"""Read an alerts topic to its end offsets (no silence timeout): every event published so far."""

from __future__ import annotations

import json

from kafka import KafkaConsumer, TopicPartition


def read_to_end(bootstrap_servers: str, topic: str, timeout: float = 30.0) -> list[dict]:
    """Every event on `topic`, in partition order, read up to the end offsets of now."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        events: list[dict] = []
        remaining = {tp for tp in partitions if ends[tp] > 0}
        polls = 0
        while remaining:
            batches = consumer.poll(timeout_ms=500)
            for records in batches.values():
                events.extend(json.loads(record.value) for record in records)
            remaining = {tp for tp in remaining if consumer.position(tp) < ends[tp]}
            polls += 1
            if polls * 0.5 > timeout:
                raise AssertionError(f"could not read {topic} to its end offsets {ends}")
        return events
    finally:
        consumer.close()


def deduplicated(events: list[dict]) -> list[dict]:
    """At-least-once delivery: one event per event_id, the first copy, in order."""
    seen: dict[str, dict] = {}
    for event in events:
        seen.setdefault(str(event["event_id"]), event)
    return list(seen.values())
