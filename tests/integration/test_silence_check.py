"""The silence check's rounds on the real PostgreSQL and Kafka, without Spark: messages are
produced with chosen broker timestamps (CreateTime), staged the way the JDBC writer stages them
and committed by the sink's commit_batch; then one round of the check runs. Old broker timestamps
stand in for waiting, so the lifecycle cases (cooldown, the end of an outage, a backlog) take
seconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from kafka import KafkaProducer

from heartbeat_contract.message import to_milliseconds
from heartbeat_stream.config import JobConfig
from heartbeat_stream.runtime.silence import SilenceCheck
from heartbeat_stream.sinks.alert_store import AlertRules
from heartbeat_stream.sinks.batch_commit import commit_batch
from tests.support.db import superuser_query
from tests.support.kafka import client_args
from tests.support.sink_rows import SinkRows

pytestmark = pytest.mark.integration

SILENT_AFTER = timedelta(seconds=300)  # the default
COOLDOWN = timedelta(seconds=600)  # the default


class Sink(SinkRows):
    """Messages into partition 0 of the topic, committed batch by batch; one check round."""

    def __init__(self, stack, topic: str, config: JobConfig) -> None:
        super().__init__(stack, config.sink_id)
        self.topic = topic
        self.config = config
        self.conn = psycopg2.connect(stack.app_dsn)
        self.producer = KafkaProducer(**client_args(stack.kafka_bootstrap_servers), acks="all")
        self.check = SilenceCheck(config)
        self.batch_id = 0
        self.run = uuid.uuid4().hex[:6]

    def customer(self, name: str) -> str:
        return f"T18S-{self.run}-{name}"

    def produce(self, customer: str, at: datetime) -> tuple[int, datetime]:
        """One reading whose broker timestamp (and event time) is `at`: (offset, timestamp)."""
        future = self.producer.send(
            self.topic, key=customer.encode(), value=b"{}", partition=0,
            timestamp_ms=int(at.timestamp() * 1000),
        )  # fmt: skip
        metadata = future.get(timeout=30)
        return metadata.offset, datetime.fromtimestamp(metadata.timestamp / 1000, UTC)

    def commit(self, readings: list[tuple[str, datetime]]) -> None:
        """Produce the readings and commit them as one batch."""
        self.commit_produced([(c, *self.produce(c, at)) for c, at in readings])

    def commit_produced(self, messages: list[tuple[str, int, datetime]]) -> None:
        """Stage messages already in Kafka (customer, offset, timestamp), commit them."""
        rows = [
            (self.sink_id, self.batch_id, self.topic, offset, stamp, customer, stamp)
            for customer, offset, stamp in messages
        ]
        with self.conn, self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO stage_messages (sink_id, batch_id, kafka_topic, kafka_partition,"
                ' kafka_offset, kafka_timestamp, customer_id, "timestamp", heart_rate)'
                " VALUES (%s, %s, %s, 0, %s, %s, %s, %s, 72)",
                rows,
            )
        commit_batch(self.conn, self.sink_id, self.batch_id, AlertRules())
        self.batch_id += 1

    def episodes(self, kind: str) -> list[tuple]:
        """(customer, started_at, ended_at, revision, readings) of a kind, oldest first."""
        return super().episodes(kind, "customer_id, started_at, ended_at, revision, readings")

    def close(self) -> None:
        self.conn.close()
        self.producer.close()


@pytest.fixture
def sink(stack, fresh_topic, alerts_topic, tmp_path, monkeypatch) -> Iterator[Sink]:
    for name, value in stack.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KAFKA_TOPIC", fresh_topic)
    monkeypatch.setenv("KAFKA_ALERTS_TOPIC", alerts_topic)
    monkeypatch.setenv("HEARTBEAT_CHECKPOINT_DIR", str(tmp_path / "checkpoint"))
    built = Sink(stack, fresh_topic, JobConfig())
    try:
        yield built
    finally:
        built.close()


def test_a_silence_within_the_cooldown_reopens_the_episode_and_publishes_it_open_again(sink):
    now = to_milliseconds(datetime.now(UTC))  # as the broker stamps it
    customer = sink.customer("cool")
    sink.commit([(customer, now - timedelta(seconds=1000))])
    assert sink.check.run_once() == 1
    assert sink.events(customer) == [("open", 0)]

    back = now - timedelta(seconds=900)  # heard again: resolved at that reading
    sink.commit([(customer, back)])
    assert sink.events(customer) == [("open", 0), ("resolved", 0)]
    # Silent again 100 s after that end, within the cooldown: the same episode reopens, and on
    # call, told it was resolved, hears it is open again (revision 1, the same alert).
    assert sink.check.run_once() == 1
    [(_, started, ended, revision, _)] = sink.episodes("device_silent")
    assert (started, ended, revision) == (now - timedelta(seconds=1000), None, 1)
    assert sink.events(customer) == [("open", 0), ("resolved", 0), ("open", 1)]

    sink.commit([(customer, now)])
    assert sink.events(customer) == [("open", 0), ("resolved", 0), ("open", 1), ("resolved", 1)]
    [(_, _, ended, revision, _)] = sink.episodes("device_silent")
    assert (ended, revision) == (now, 1)


def test_after_an_outage_the_customers_still_silent_are_reported_one_by_one(sink):
    now = to_milliseconds(datetime.now(UTC))  # as the broker stamps it
    wave = [sink.customer(f"w{i}") for i in range(4)]
    sink.commit([(c, now - timedelta(seconds=400 + i)) for i, c in enumerate(wave)])
    assert sink.check.run_once() == 1  # 4 of 4 silent: one outage
    [(feed, started, _, _, readings)] = sink.episodes("ingestion_silent")
    assert (feed, started, readings) == ("*", now - timedelta(seconds=400), 4)
    assert sink.episodes("device_silent") == []
    assert sink.check.run_once() == 0  # still an outage: nothing more

    returning, straggler = wave[1:], wave[0]
    sink.commit([(c, now) for c in returning])  # readings flow again, 1 of 4 still silent
    assert sink.check.run_once() == 1  # the outage ends; the straggler has a delay to return
    [(_, _, ended, _, _)] = sink.episodes("ingestion_silent")
    assert ended is not None
    assert sink.events("*") == [("open", 0), ("resolved", 0)]
    assert sink.check.run_once() == 0
    assert sink.episodes("device_silent") == []

    # A silence delay after the outage ended, the straggler still sends nothing: reported alone.
    superuser_query(
        sink.stack,
        "UPDATE heart_rate_alerts SET ended_at = ended_at - %s"
        " WHERE sink_id = %s AND kind = 'ingestion_silent'",
        SILENT_AFTER,
        sink.sink_id,
    )
    assert sink.check.run_once() == 1
    [(customer, started, _, _, _)] = sink.episodes("device_silent")
    assert (customer, started) == (straggler, now - timedelta(seconds=400))
    assert sink.events(straggler) == [("open", 0)]


def test_an_outage_back_within_the_cooldown_publishes_it_open_again(sink):
    """Told the outage was resolved, on call hears when it is back: the same episode reopens
    and publishes an `open` of revision 1."""
    now = to_milliseconds(datetime.now(UTC))  # as the broker stamps it
    wave = [sink.customer(f"b{i}") for i in range(4)]
    sink.commit([(c, now - timedelta(seconds=400 + i)) for i, c in enumerate(wave)])
    assert sink.check.run_once() == 1  # an outage
    sink.commit([(c, now) for c in wave])  # everyone back
    assert sink.check.run_once() == 1  # resolved
    assert sink.events("*") == [("open", 0), ("resolved", 0)]

    # Everyone silent again (their last readings moved a silence delay and more back), well
    # within the cooldown of that end.
    superuser_query(
        sink.stack,
        "UPDATE customer_activity SET last_seen_at = last_seen_at - %s"
        " WHERE sink_id = %s AND customer_id = ANY(%s)",
        SILENT_AFTER + timedelta(seconds=100),
        sink.sink_id,
        wave,
    )
    assert sink.check.run_once() == 1
    [(_, started, ended, revision, _)] = sink.episodes("ingestion_silent")
    assert (started, ended, revision) == (now - timedelta(seconds=400), None, 1)
    assert sink.events("*") == [("open", 0), ("resolved", 0), ("open", 1)]


def test_a_message_waiting_in_a_partition_idle_since_an_outage_began_does_not_end_it(sink):
    """The partition's last committed message is older than the outage's judgement: read up to
    there only, everyone looked heard recently. The check keeps judging where it had got to."""
    now = to_milliseconds(datetime.now(UTC))  # as the broker stamps it
    wave = [sink.customer(f"w{i}") for i in range(4)]
    sink.commit([(c, now - timedelta(seconds=400 + i)) for i, c in enumerate(wave)])
    assert sink.check.run_once() == 1  # judged up to now: one outage

    sink.produce(wave[0], now)  # one device is back; the job has not read its reading yet
    assert sink.check.run_once() == 0
    [(_, _, ended, _, _)] = sink.episodes("ingestion_silent")
    assert ended is None
    assert sink.events("*") == [("open", 0)]


def test_a_partition_not_read_to_its_end_holds_the_judgement_back(sink):
    now = to_milliseconds(datetime.now(UTC))  # as the broker stamps it
    customer = sink.customer("lag")
    sink.commit([(customer, now - timedelta(seconds=1000))])
    waiting = sink.produce(customer, now - timedelta(seconds=999))  # in Kafka, not yet read
    # Read up to the last committed message only: 1000 s ago, so nobody is silent yet.
    assert sink.check.run_once() == 0
    assert sink.episodes("device_silent") == []

    sink.commit_produced([(customer, *waiting)])  # read to the end: judged up to now
    assert sink.check.run_once() == 1
    [(silent, started, *_)] = sink.episodes("device_silent")
    assert (silent, started) == (customer, now - timedelta(seconds=999))
