"""Silent devices end to end: Kafka -> spark-submit job -> PostgreSQL -> the alerts topic.

The job runs with a short silence delay and a fresh alerts topic of the test; every assertion
about events reads that topic to its end offsets.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from kafka import KafkaProducer

from heartbeat_contract import encode_reading
from heartbeat_stream.config import sink_id_for
from tests.support import kafka
from tests.support.figures import record
from tests.support.kafka import client_args
from tests.support.sink_rows import SinkRows
from tests.support.stream_job import StreamJob, wait_for

pytestmark = pytest.mark.integration

SILENT_AFTER = 10  # seconds: the shortest that still leaves a loaded job's batches inside it
CHECK_EVERY = 1  # seconds
BOUND = 30  # the rule: raised at most this long after last reading + SILENT_AFTER
JOB_START = 240  # seconds for a spark-submit job to start and commit its first batch here


class Feed:
    """Readings sent to the readings topic; returns each message's broker timestamp."""

    def __init__(self, stack, topic: str) -> None:
        self.topic = topic
        self.producer = KafkaProducer(**client_args(stack.kafka_bootstrap_servers), acks="all")

    def send(self, customer: str, at: datetime | None = None, bpm: int = 72) -> datetime:
        at = at or datetime.now(UTC)
        key, value = encode_reading(customer, at, bpm)
        stamp = int(at.timestamp() * 1000)  # CreateTime: the broker keeps the producer's time
        metadata = self.producer.send(self.topic, key=key, value=value, timestamp_ms=stamp)
        return datetime.fromtimestamp(metadata.get(timeout=30).timestamp / 1000, UTC)

    def close(self) -> None:
        self.producer.close()


class Pacemaker(threading.Thread):
    """Sends one reading per customer every `interval` seconds until stopped."""

    def __init__(self, stack, topic: str, customers: list[str], interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.feed = Feed(stack, topic)
        self.customers = list(customers)
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            for customer in self.customers:
                self.feed.send(customer)
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=30)
        self.feed.close()


class AlertsTopic:
    """The alerts topic read from the beginning to its end offsets: (event, broker time)."""

    def __init__(self, stack, topic: str) -> None:
        self.servers = stack.kafka_bootstrap_servers
        self.topic = topic

    def events(self) -> list[tuple[dict, datetime]]:
        return [
            (json.loads(message.value), datetime.fromtimestamp(message.timestamp / 1000, UTC))
            for message in kafka.read_to_end(self.servers, self.topic)
        ]

    def of(
        self, customer: str, kind: str, status: str | None = None
    ) -> list[tuple[dict, datetime]]:
        """Distinct events (by event_id, as consumers deduplicate) of one customer and kind."""
        unique = {}
        for event, stamp in self.events():
            wanted = status is None or event["status"] == status
            if wanted and (event["customer_id"], event["kind"]) == (customer, kind):
                unique.setdefault(event["event_id"], (event, stamp))
        return list(unique.values())


class Episodes(SinkRows):
    """What the job recorded for its sink, read as the superuser."""

    def of(self, kind: str, customers: list[str] | None = None) -> list[tuple]:
        """(customer, alert_id, started_at, ended_at, readings, muted, revision) of a kind."""
        rows = self.episodes(
            kind, "customer_id, alert_id, started_at, ended_at, readings, muted, revision"
        )
        return [row for row in rows if customers is None or row[0] in customers]

    def committed(self, customer: str, at_least: datetime) -> bool:
        seen = self.seen(customer)
        return seen is not None and seen >= at_least


@pytest.fixture
def silence(stack, fresh_topic, alerts_topic, tmp_path):
    """(job, feed, alerts, episodes) for one test: a job with a short silence delay."""
    checkpoint = str(tmp_path / "checkpoint")
    job = StreamJob(
        stack,
        fresh_topic,
        checkpoint,
        tmp_path / "job.log",
        KAFKA_ALERTS_TOPIC=alerts_topic,
        HEARTBEAT_SILENT_AFTER_SECONDS=str(SILENT_AFTER),
        HEARTBEAT_SILENT_CHECK_SECONDS=str(CHECK_EVERY),
    )
    feed = Feed(stack, fresh_topic)
    alerts = AlertsTopic(stack, alerts_topic)
    try:
        yield job, feed, alerts, Episodes(stack, sink_id_for(checkpoint))
    finally:
        job.stop()
        feed.close()


def customers(prefix: str, count: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [f"T18S-{prefix}-{run}-{i:02d}" for i in range(count)]


def test_a_device_that_stops_is_reported_on_an_idle_topic_and_resolved_by_its_next_reading(
    stack, silence
):
    job, feed, alerts, episodes = silence
    (customer,) = customers("A", 1)
    (warmup,) = customers("W", 1)  # shows the job is up (and is silent itself from then on)
    job.start()
    feed.send(warmup)
    wait_for(lambda: episodes.seen(warmup) is not None, JOB_START, "the job's first commit")
    feed.send(customer)
    last = feed.send(customer)  # then nothing at all arrives on the topic
    wait_for(lambda: episodes.committed(customer, last), 60, "the last reading committed")

    wait_for(
        lambda: alerts.of(customer, "device_silent", "open"),
        SILENT_AFTER + BOUND + 30,
        "a device_silent open event",
        poll=0.5,
    )
    [(opened, published_at)] = alerts.of(customer, "device_silent", "open")
    delay = (published_at - (last + timedelta(seconds=SILENT_AFTER))).total_seconds()
    record("silent device on an idle topic", seconds_after_silent_after=round(delay, 2))
    assert 0 <= delay <= BOUND, f"raised {delay:.1f} s after the silence delay ran out"
    assert opened["started_at"] == last.isoformat()  # the last reading before the silence
    assert (opened["severity"], opened["readings"], opened["extreme_bpm"]) == ("warning", 0, None)
    [(_, alert_id, *_)] = episodes.of("device_silent", [customer])
    assert opened["alert_id"] == alert_id

    back = datetime.now(UTC)
    feed.send(customer, at=back)
    wait_for(
        lambda: alerts.of(customer, "device_silent", "resolved"),
        60,
        "a device_silent resolved event",
        poll=0.5,
    )
    [(resolved, _)] = alerts.of(customer, "device_silent", "resolved")
    assert resolved["alert_id"] == opened["alert_id"]
    assert datetime.fromisoformat(resolved["ended_at"]) == back.replace(
        microsecond=back.microsecond // 1000 * 1000
    )  # the returning reading's event time (the contract keeps milliseconds)
    assert episodes.query(
        "SELECT silent_since FROM customer_activity WHERE sink_id = %s AND customer_id = %s",
        customer,
    ) == [(None,)]


def test_a_backlog_waiting_in_the_topic_is_not_silence(stack, silence):
    job, feed, alerts, episodes = silence
    backlogged = customers("B", 5)
    (warmup,) = customers("W", 1)  # shows the job is up; silent from then on
    (sentinel,) = customers("S", 1)  # sends nothing after the first phase: truly silent
    job.start()
    feed.send(warmup)
    wait_for(lambda: episodes.seen(warmup) is not None, JOB_START, "the job's first commit")
    sentinel_at = feed.send(sentinel)
    # The backlogged devices send all along: while the job runs, while it is down and after.
    # (When they sent once and stopped, a check before the stop saw all of them quiet together,
    # rightly an ingestion outage by the rule.)
    devices = Pacemaker(stack, feed.topic, backlogged, interval=2.0)
    devices.start()
    try:
        wait_for(
            lambda: (
                episodes.committed(sentinel, sentinel_at)
                and all(episodes.seen(c) is not None for c in backlogged)
            ),
            60,
            "the first phase committed",
        )
        job.stop()
        # By the restart, the oldest messages waiting are older than the silence delay, and
        # the last committed ones older still.
        resume = datetime.now(UTC) + timedelta(seconds=SILENT_AFTER + 10)
        wait_for(lambda: datetime.now(UTC) >= resume, SILENT_AFTER + 20, "the job's downtime")
        job.start()
        # The sentinel's silence shows that the check has judged past the backlog.
        wait_for(
            lambda: episodes.of("device_silent", [sentinel]),
            JOB_START + SILENT_AFTER + BOUND,
            "the sentinel reported silent",
        )
        for customer in backlogged:
            assert episodes.seen(customer) > resume - timedelta(seconds=5), customer
        assert episodes.of("device_silent", backlogged) == []
        assert episodes.of("ingestion_silent") == []
        # Reported: the warm-up customer (silent during the first phase) and the sentinel.
        reported = {row[0] for row in episodes.of("device_silent")}
        assert reported <= {warmup, sentinel}
        assert len(alerts.of(sentinel, "device_silent", "open")) == 1
        for customer in backlogged:
            assert alerts.of(customer, "device_silent") == []
    finally:
        devices.stop()


def test_many_customers_silent_together_are_one_ingestion_outage(stack, silence):
    job, feed, alerts, episodes = silence
    everyone = customers("C", 12)
    stopping, steady = everyone[:10], everyone[10:]
    job.start()
    beat = Pacemaker(stack, feed.topic, everyone)
    beat.start()
    try:
        started = datetime.now(UTC)
        wait_for(
            lambda: all(episodes.committed(c, started) for c in everyone),
            JOB_START,
            "every customer committed",
        )
        beat.customers = steady  # 10 of 12 stop together; 2 keep sending
        wait_for(
            lambda: alerts.of("*", "ingestion_silent", "open"),
            SILENT_AFTER + BOUND + 30,
            "an ingestion_silent open event",
            poll=0.5,
        )
        # Every one of the 10 is past the delay (the episode counts them), none reported alone.
        wait_for(
            lambda: episodes.of("ingestion_silent")[0][4] == len(stopping),
            30,
            "the outage to count every silent customer",
        )
        assert len(episodes.of("ingestion_silent")) == 1
        assert episodes.of("device_silent", everyone) == []
        [(opened, _)] = alerts.of("*", "ingestion_silent", "open")
        assert opened["severity"] == "critical"

        beat.customers = everyone  # readings flow again: the outage ends
        wait_for(
            lambda: alerts.of("*", "ingestion_silent", "resolved"),
            60,
            "an ingestion_silent resolved event",
            poll=0.5,
        )
        [(resolved, _)] = alerts.of("*", "ingestion_silent", "resolved")
        assert resolved["alert_id"] == opened["alert_id"]
        assert episodes.of("device_silent", everyone) == []
        for customer in everyone:
            assert alerts.of(customer, "device_silent") == []
    finally:
        beat.stop()


def test_a_muted_customer_is_recorded_not_published(stack, silence):
    job, feed, alerts, episodes = silence
    (customer,) = customers("M", 1)
    with psycopg2.connect(stack.admin_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO customer_alert_settings (customer_id, muted_until) VALUES (%s, %s)",
            (customer, datetime.now(UTC) + timedelta(hours=1)),
        )
    job.start()
    last = feed.send(customer)
    wait_for(lambda: episodes.committed(customer, last), JOB_START, "the reading committed")
    wait_for(
        lambda: episodes.of("device_silent", [customer]),
        SILENT_AFTER + BOUND + 30,
        "a muted device_silent episode",
    )
    [(_, _, started_at, ended_at, _, muted, _)] = episodes.of("device_silent", [customer])
    assert (started_at, ended_at, muted) == (last, None, True)

    back = feed.send(customer)  # resolves it, still without an event
    wait_for(lambda: episodes.of("device_silent", [customer])[0][3] is not None, 60, "resolved")
    assert episodes.committed(customer, back)
    assert alerts.of(customer, "device_silent") == []
    assert episodes.query(
        "SELECT count(*) FROM alert_events WHERE sink_id = %s AND customer_id = %s", customer
    ) == [(0,)]
