"""Alert latency through the notifier: event published on Kafka -> signed webhook received.

The real heartbeat-notifier process on a fresh alerts topic and consumer group, a database of its
own (BENCH_NOTIFY_DATABASE, default heartbeat_bench_notify: no live channel sees these events),
and a real HTTP receiver on localhost. Phase 1 publishes BENCH_NOTIFY_EVENTS events paced at
BENCH_NOTIFY_RATE/s and prints p50/p99/max of (received - sent); phase 2 publishes a burst of the
same size at once and prints how long the last one took. (From the reading that completes the
sustain window, add the job's own batch latency: README, "Measured figures".)
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
from kafka import KafkaProducer

from heartbeat_contract.alerts import OPEN, TACHYCARDIA, alert_event, encode_event
from heartbeat_contract.kafka_security import ADMIN, kafka_client_args
from heartbeat_notifier.metrics import percentile
from heartbeat_ops import database
from heartbeat_ops.config import load
from tests.support.kafka import create_topic, delete_topics
from tests.support.notifier import NotifierProcess, only_webhook_channel
from tests.support.receivers import WebhookReceiver
from tests.support.stream_job import wait_for

EVENTS = int(os.environ.get("BENCH_NOTIFY_EVENTS", "500"))
RATE = float(os.environ.get("BENCH_NOTIFY_RATE", "50"))
DATABASE = os.environ.get("BENCH_NOTIFY_DATABASE") or "heartbeat_bench_notify"


def _events(tag: str, count: int) -> list[dict[str, object]]:
    start = datetime.now(UTC) - timedelta(hours=1)
    return [
        alert_event(customer_id=f"B{tag}{n:05d}", kind=TACHYCARDIA, status=OPEN,
                    started_at=start, last_reading_at=start, extreme_bpm=150, readings=61)
        for n in range(count)
    ]  # fmt: skip


def _publish(producer: KafkaProducer, topic: str, events, rate: float | None) -> dict[str, float]:
    """event_id -> time sent (acknowledged by Kafka)."""
    sent: dict[str, float] = {}
    started = time.monotonic()
    for n, event in enumerate(events):
        if rate:
            pause = started + n / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        key, value = encode_event(event)
        sent[str(event["event_id"])] = time.time()
        producer.send(topic, key=key, value=value)
        if rate:
            producer.flush()
    producer.flush()
    return sent


def _latencies(receiver: WebhookReceiver, sent: dict[str, float]) -> list[float]:
    first: dict[str, float] = {}
    for request in list(receiver.received):
        event_id = str(request.json["event_id"])
        if event_id in sent:
            first.setdefault(event_id, request.at - sent[event_id])
    return list(first.values())


def _line(name: str, values: list[float]) -> str:
    p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
    return (f"  {name}: {len(values)} events, p50 {p50 * 1000:,.0f} ms, p99 {p99 * 1000:,.0f} ms,"
            f" max {max(values) * 1000:,.0f} ms")  # fmt: skip


def run() -> None:
    logging.getLogger("kafka").setLevel(logging.ERROR)
    stack = load().model_copy(update={"pg_database": DATABASE})
    database.bootstrap(stack)
    topic = f"bench-alerts-{uuid.uuid4().hex[:8]}"
    create_topic(stack.kafka_bootstrap_servers, topic)  # the notifier principal reads it
    receiver = WebhookReceiver().start()
    conn = psycopg2.connect(stack.admin_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        only_webhook_channel(cur, receiver.url("/bench"))
    log = Path(tempfile.mkdtemp(prefix="bench-notifier-")) / "notifier.log"
    notifier = NotifierProcess(stack, topic, f"bench-{uuid.uuid4().hex[:8]}", log)
    producer = KafkaProducer(**kafka_client_args(stack, ADMIN), acks="all",
                             linger_ms=0)  # fmt: skip
    try:
        notifier.start()
        # Warm-up: the group's first assignment and the first connections are not latency.
        warm = _publish(producer, topic, _events("W", 5), None)
        wait_for(lambda: len(_latencies(receiver, warm)) == 5, 120, "warm-up delivered")
        print(f"one webhook channel, {os.cpu_count()} cores, notifier log {log}")
        paced = _publish(producer, topic, _events("P", EVENTS), RATE)
        wait_for(lambda: len(_latencies(receiver, paced)) == EVENTS, 300, "paced delivered")
        print(_line(f"paced at {RATE:g} events/s", _latencies(receiver, paced)))
        started = time.time()
        burst = _publish(producer, topic, _events("B", EVENTS), None)
        wait_for(lambda: len(_latencies(receiver, burst)) == EVENTS, 300, "burst delivered")
        values = _latencies(receiver, burst)
        print(_line("burst (all at once)", values))
        drained = max(r.at for r in receiver.at("/bench")) - started
        print(f"  burst drained in {drained:.1f} s = {EVENTS / drained:,.0f} deliveries/s")
    finally:
        notifier.stop()
        producer.close()
        receiver.stop()
        conn.close()
        delete_topics(stack.kafka_bootstrap_servers, topic)
