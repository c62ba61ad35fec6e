"""Kafka as the tests use it, written once: topics of their own, publishing, end offsets, and
reading a topic to its end offsets (never "10 s of silence" taken as the end)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewPartitions, NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from tests.support import kafka_login
from tests.support.kafka_login import client_args, grant_topic
from tests.support.stream_job import wait_for

__all__ = ["client_args", "grant_topic"]  # for callers that import them from here


def create_topic(servers: str, name: str, partitions: int = 3) -> None:
    admin = KafkaAdminClient(**client_args(servers))
    try:
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        reader = grant_topic(admin, name)
    finally:
        admin.close()
    kafka_login.wait_visible(servers, reader, name)  # the broker applies ACLs just after


def add_partitions(servers: str, name: str, total: int) -> None:
    """Grow `name` to `total` partitions, as an operator scaling out does."""
    admin = KafkaAdminClient(**client_args(servers))
    try:
        admin.create_partitions({name: NewPartitions(total_count=total)})
    finally:
        admin.close()


def delete_topics(servers: str, *names: str) -> None:
    """Delete those of `names` that exist (a test may never have created its alerts topic)."""
    admin = KafkaAdminClient(**client_args(servers))
    try:
        existing = set(admin.list_topics())
        if present := [name for name in names if name in existing]:
            admin.delete_topics(present)
    finally:
        admin.close()


@contextmanager
def temporary_topic(servers: str, prefix: str = "test", partitions: int = 3) -> Iterator[str]:
    """A new topic with a unique name, deleted afterwards, so tests never see each other."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    create_topic(servers, name, partitions)
    try:
        yield name
    finally:
        delete_topics(servers, name)


def publish(
    servers: str,
    topic: str,
    messages: Iterable[tuple[bytes | None, bytes | None]],
    partition: int | None = None,
    **options,
) -> list[tuple[int, int]]:
    """Send (key, value) pairs with acks=all and wait until the broker has them all; returns
    each message's (partition, offset), in order. `partition`: all to that one, not by key.
    `options` go to KafkaProducer (linger_ms, max_request_size, ...)."""
    producer = KafkaProducer(**client_args(servers), acks="all", **options)
    try:
        futures = [
            producer.send(topic, key=key, value=value, partition=partition)
            for key, value in messages
        ]
        producer.flush()
        # .get raises if the broker refused one.
        return [(md.partition, md.offset) for md in (f.get(timeout=60) for f in futures)]
    finally:
        producer.close()


def end_offsets(
    servers: str, topic: str, login: dict[str, str] | None = None
) -> dict[int, int] | None:
    """partition -> end offset of `topic`, or None while no broker answers. `login`: the
    client's arguments when not the tests' own (the live stack's admin: its own password)."""
    try:
        consumer = KafkaConsumer(**(login or client_args(servers)), request_timeout_ms=5000)
    except KafkaError:  # no broker reachable right now
        return None
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(partitions) if partitions else {}
        return {tp.partition: offset for tp, offset in ends.items()}
    except KafkaError:
        return None
    finally:
        consumer.close()


def topic_end(servers: str, topic: str) -> int | None:
    """Messages in the topic (the sum of its end offsets), or None while no broker answers."""
    ends = end_offsets(servers, topic)
    return None if ends is None else sum(ends.values())


def read_to_end(servers: str, topic: str, timeout: float = 120.0) -> list[ConsumerRecord]:
    """Every record of `topic` up to the end offsets it has now, in partition then offset
    order; no consumer group, so nothing is committed anywhere."""
    consumer = KafkaConsumer(**client_args(servers), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        assert partitions, f"topic {topic} does not exist"
        ends = consumer.end_offsets(partitions)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: dict[TopicPartition, list[ConsumerRecord]] = {tp: [] for tp in partitions}

        def at_end() -> bool:
            for tp, batch in consumer.poll(timeout_ms=500).items():
                records[tp].extend(r for r in batch if r.offset < ends[tp])
            return all(consumer.position(tp) >= ends[tp] for tp in partitions)

        wait_for(at_end, timeout, f"reading {topic} to its end offsets", poll=0)
        return [record for tp in partitions for record in records[tp]]
    finally:
        consumer.close()
