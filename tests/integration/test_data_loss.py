"""HEARTBEAT_FAIL_ON_DATA_LOSS end to end: Kafka deletes messages the job has not read yet.

README ("Configuration"): `true` (the default) fails loudly if Kafka deleted unread messages;
`false` goes on from the oldest message Kafka still has. Both on one checkpoint: the job reads a
first lot, stops; a second and a third lot are published and Kafka deletes the second (records
deleted below the third's first offsets, as retention would age them out). Restarted with the
default, the job must exit non-zero with the reason and store nothing; restarted with `false`,
it must store the third lot, never the second, and keep running.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaAdminClient, TopicPartition

from heartbeat_contract import encode_reading
from tests.support import kafka
from tests.support.db import superuser_query
from tests.support.kafka import client_args
from tests.support.stream_job import StreamJob, wait_for
from tests.support.world import CUSTOMER_PREFIX

pytestmark = pytest.mark.integration

PER_LOT = 30
# Spark's Kafka source, failing on data loss (the KAFKA_DATA_LOSS error's message).
DATA_LOSS_REASON = "data may have been lost"


def lot(name: str) -> list[tuple[bytes, bytes]]:
    """PER_LOT readings of customers of the lot's own, spread over the topic's partitions."""
    now = datetime.now(UTC)
    return [
        encode_reading(f"{CUSTOMER_PREFIX}{name}-{i % 6}", now - timedelta(seconds=PER_LOT - i), 70)
        for i in range(PER_LOT)
    ]


def stored_by_lot(stack, topic: str) -> dict[str, int]:
    """Valid rows of `topic` per lot (the lot's name is in each customer id)."""
    rows = superuser_query(
        stack,
        "SELECT customer_id, count(*) FROM heart_rate_readings WHERE kafka_topic = %s"
        " GROUP BY customer_id",
        topic,
    )
    totals: dict[str, int] = {}
    for customer, count in rows:
        name = customer.removeprefix(CUSTOMER_PREFIX).rsplit("-", 1)[0]
        totals[name] = totals.get(name, 0) + count
    return totals


def delete_below(stack, positions: list[tuple[int, int]], topic: str) -> None:
    """Delete every record of `topic` below the first of `positions` in each partition (the
    partition's end where none of them is): what Kafka's retention does to old segments."""
    ends = kafka.end_offsets(stack.kafka_bootstrap_servers, topic)
    assert ends is not None
    first = {partition: end for partition, end in ends.items()}
    for partition, offset in positions:
        first[partition] = min(first[partition], offset)
    admin = KafkaAdminClient(**client_args(stack.kafka_bootstrap_servers))
    try:
        admin.delete_records({TopicPartition(topic, p): o for p, o in first.items()})
    finally:
        admin.close()


def test_unread_messages_deleted_by_kafka_fail_the_job_unless_told_to_go_on(
    stack, fresh_topic, tmp_path
):
    servers = stack.kafka_bootstrap_servers
    run = uuid.uuid4().hex[:6]
    names = {part: f"{run}{part}" for part in ("first", "deleted", "kept")}
    by_lot = lambda: stored_by_lot(stack, fresh_topic)  # noqa: E731
    job = StreamJob(stack, fresh_topic, str(tmp_path / "checkpoint"), tmp_path / "job.log")
    try:
        kafka.publish(servers, fresh_topic, lot(names["first"]))
        job.start()  # the default: HEARTBEAT_FAIL_ON_DATA_LOSS unset, true
        wait_for(lambda: by_lot().get(names["first"]) == PER_LOT, 240, "the first lot")
        job.stop()

        kafka.publish(servers, fresh_topic, lot(names["deleted"]))
        kept = kafka.publish(servers, fresh_topic, lot(names["kept"]))
        delete_below(stack, kept, fresh_topic)

        job.start()
        code = job.wait_exit(timeout=240)
        log = job.log_path.read_text(errors="replace")
        assert code != 0, job.log_tail(60)
        assert DATA_LOSS_REASON in log.lower(), job.log_tail(80)
        assert by_lot() == {names["first"]: PER_LOT}, "stored something past the lost messages"

        job.start(HEARTBEAT_FAIL_ON_DATA_LOSS="false")
        wait_for(lambda: by_lot().get(names["kept"]) == PER_LOT, 240, "the lot after the gap")
        assert by_lot() == {names["first"]: PER_LOT, names["kept"]: PER_LOT}
        assert job.process is not None and job.process.poll() is None, job.log_tail(60)
    finally:
        job.stop()
