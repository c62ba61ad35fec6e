"""Hostile input at volume: thousands of generated values through the real job while it runs.

Each value lands per the rules (valid, or quarantined with the reason the README gives it),
valid rows with their customer id, time and rate exactly, quarantined ones with the value
verbatim; the job never stops. The producer's known mix lands the same way on the same running
job (each test judges only the Kafka positions it published: one spark-submit start serves the
module). And a message over the broker's size limit is refused by the producer with an error
that says so.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heartbeat_producer.config import PublisherSettings
from heartbeat_producer.publisher import Publisher
from heartbeat_producer.simulator import Message
from tests.support import figures, kafka
from tests.support.db import superuser_query
from tests.support.harness import process_group
from tests.support.hostile import INJECTIONS, MALFORMED_JSON, VALID, Hostile, hostile_messages
from tests.support.known_mix import AWKWARD_CUSTOMER, mixed_messages
from tests.support.sockets import is_loopback, listening_addresses
from tests.support.stream_job import StreamJob, wait_for
from tests.support.world import CUSTOMER_PREFIX

pytestmark = pytest.mark.integration

EXAMPLES = 20
PER_EXAMPLE = (100, 200)  # 20 examples of 100-200 values: ~3,000 values per run
TOTALS = {"examples": 0}  # for the figures only; no test depends on it


@pytest.fixture(scope="module")
def running_job(stack, tmp_path_factory) -> Iterator[tuple[StreamJob, str]]:
    with kafka.temporary_topic(stack.kafka_bootstrap_servers, "test-hostile") as topic:
        workdir = tmp_path_factory.mktemp("hostile")
        job = StreamJob(stack, topic, str(workdir / "checkpoint"), workdir / "job.log")
        job.start()
        try:
            yield job, topic
        finally:
            job.stop()


def publish(stack, topic: str, messages: list[Hostile]) -> list[tuple[int, int]]:
    """Send and wait for every ack; (partition, offset) of each message, in order."""
    return kafka.publish(
        stack.kafka_bootstrap_servers, topic, [(b"hostile", m.value) for m in messages],
        linger_ms=20, max_request_size=2 * 1024 * 1024,
    )  # fmt: skip


_LANDED = """
SELECT p, o, 'valid', customer_id, "timestamp", heart_rate, NULL, NULL, NULL
FROM heart_rate_readings JOIN unnest(%(p)s::int[], %(o)s::bigint[]) AS k(p, o)
  ON kafka_partition = k.p AND kafka_offset = k.o WHERE kafka_topic = %(t)s
UNION ALL
SELECT p, o, reason, NULL, NULL, NULL, raw_value, raw_value_base64, detail
FROM rejected_readings JOIN unnest(%(p)s::int[], %(o)s::bigint[]) AS k(p, o)
  ON kafka_partition = k.p AND kafka_offset = k.o WHERE kafka_topic = %(t)s
"""


def landed(stack, topic: str, positions: list[tuple[int, int]]) -> dict[tuple[int, int], tuple]:
    params = {"t": topic, "p": [p for p, _ in positions], "o": [o for _, o in positions]}
    rows = superuser_query(stack, _LANDED, params)
    found: dict[tuple[int, int], tuple] = {}
    for p, o, *rest in rows:
        assert (p, o) not in found, f"message {p}/{o} stored twice"
        found[p, o] = tuple(rest)
    return found


def stored_bytes(text: str | None, b64: str | None) -> bytes | None:
    if text is not None:
        return text.encode()
    return base64.b64decode(b64) if b64 is not None else None


@settings(max_examples=EXAMPLES, deadline=None, derandomize=False, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture,
    HealthCheck.large_base_example,
])  # fmt: skip
@given(messages=st.lists(hostile_messages, min_size=PER_EXAMPLE[0], max_size=PER_EXAMPLE[1]))
def test_hostile_values_land_per_the_rules_while_the_job_runs(stack, running_job, messages):
    job, topic = running_job
    positions = publish(stack, topic, messages)
    wait_for(lambda: len(landed(stack, topic, positions)) == len(positions), 180,
             f"{len(positions)} hostile values to land", poll=0.5)  # fmt: skip
    found = landed(stack, topic, positions)
    for message, position in zip(messages, positions, strict=True):
        outcome, customer_id, timestamp, heart_rate, raw_text, raw_b64, _ = found[position]
        assert outcome == message.outcome, message.value[:300] if message.value else None
        if outcome == VALID:
            assert (customer_id, heart_rate) == (message.customer_id, message.heart_rate)
            assert timestamp == message.timestamp, message.value[:300]
        else:
            assert stored_bytes(raw_text, raw_b64) == (message.value or None) or (
                message.value == b"" and raw_text == ""
            ), message.value[:300] if message.value else None
    assert job.process is not None and job.process.poll() is None, job.log_tail()
    TOTALS["examples"] += 1


def test_known_mix_lands_exactly_with_reasons(stack, running_job):
    """The producer's known mix and the cases it lacks, with keys over 11 devices."""
    job, topic = running_job
    messages = mixed_messages(1000, seed=1)
    positions = kafka.publish(
        stack.kafka_bootstrap_servers, topic,
        [(f"K{i % 11}".encode(), value) for i, (value, _) in enumerate(messages)],
        linger_ms=20, batch_size=256 * 1024,
    )  # fmt: skip
    wait_for(lambda: len(landed(stack, topic, positions)) == len(positions), 180,
             "the job to store the mix", poll=0.5)  # fmt: skip
    found = landed(stack, topic, positions)

    assert Counter(found[p][0] for p in positions) == Counter(o for _, o in messages)
    awkward = [row[1:4:2] for row in found.values() if (row[1] or "").startswith("Zo")]
    assert awkward and all(row == (AWKWARD_CUSTOMER, 72) for row in awkward)
    # Quarantined rows keep the value verbatim: as text, or as base64 when text cannot hold it.
    rejected = [row for row in found.values() if row[0] != VALID]
    assert all(detail for *_, detail in rejected)
    as_bytes = sorted(
        stored for *_, text, b64, _ in rejected
        if (stored := stored_bytes(text, b64)) is not None
    )  # fmt: skip
    assert as_bytes == sorted(v for v, outcome in messages if outcome != VALID and v is not None)
    assert job.process is not None and job.process.poll() is None, job.log_tail()


_TOPIC_TOTALS = """
SELECT count(*), count(DISTINCT (kafka_partition, kafka_offset)) FROM (
    SELECT kafka_partition, kafka_offset FROM heart_rate_readings WHERE kafka_topic = %(t)s
    UNION ALL
    SELECT kafka_partition, kafka_offset FROM rejected_readings WHERE kafka_topic = %(t)s
) AS stored
"""


def topic_totals(stack, topic: str) -> tuple[int, int]:
    """(rows stored for `topic`, distinct Kafka positions among them)."""
    return superuser_query(stack, _TOPIC_TOTALS, {"t": topic})[0]


def test_hostile_totals_recorded(stack, running_job):
    """Whatever ran before (the property test, or nothing): every value the module's topic holds,
    this test's own included, is stored exactly once and the job still runs."""
    job, topic = running_job
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    own = [
        Hostile(json.dumps({"customer_id": cid, "timestamp": at, "heart_rate": 72}).encode(), VALID)
        for cid in INJECTIONS
    ]
    own += [Hostile(b"\xff\xfe", MALFORMED_JSON), Hostile(None, MALFORMED_JSON)]
    publish(stack, topic, own)
    published = kafka.topic_end(stack.kafka_bootstrap_servers, topic)
    assert published >= len(own)
    wait_for(lambda: topic_totals(stack, topic)[0] >= published, 180,
             f"all {published} values of the module's topic to land", poll=0.5)  # fmt: skip
    assert topic_totals(stack, topic) == (published, published)  # each exactly once
    assert job.process is not None and job.process.poll() is None, job.log_tail()
    figures.record("hostile input", values=published, examples=TOTALS["examples"])


def test_message_over_the_size_limit_is_refused_with_a_clear_error(stack, fresh_topic, caplog):
    customer = f"{CUSTOMER_PREFIX}0001"
    big = Message(customer.encode(), b"x" * (2 * 1024 * 1024), VALID, customer, 0, 72, False)
    small = Message(customer.encode(), b'{"ok": true}', VALID, customer, 0, 72, False)
    settings_ = PublisherSettings(bootstrap_servers=stack.kafka_bootstrap_servers,
                                  topic=fresh_topic)  # fmt: skip
    with caplog.at_level(logging.ERROR), Publisher(settings_) as publisher:
        publisher.publish(big)
        publisher.publish(small)  # the producer carries on after the refusal
        assert publisher.flush(timeout=30)
        snapshot = publisher.ledger.snapshot()
    assert (snapshot.sent, snapshot.failed) == (1, 1)
    assert snapshot.errors == {"MessageSizeTooLargeError": 1}
    assert re.search(r"The message is 2097\d{3} bytes when serialized", caplog.text), caplog.text
    assert "max_request_size" in caplog.text
    assert kafka.topic_end(stack.kafka_bootstrap_servers, fresh_topic) == 1  # only the small one


def test_the_job_listens_on_loopback_only(running_job):
    """The Spark driver's RPC, block manager and UI ports: never on a public address."""
    job, _ = running_job
    assert job.process is not None
    sockets = listening_addresses(process_group(job.process.pid))
    assert sockets, "the job has no listening socket: the check would be vacuous"
    exposed = {pid: a for pid, addrs in sockets.items() for a in addrs if not is_loopback(a)}
    assert exposed == {}, f"the job listens beyond loopback: {exposed}"
