"""Alert latency end to end: the reading that completes the sustain window -> webhook received.

The real streaming job (spark-submit, local[2], its default trigger) and the real notifier, on
topics, a consumer group and a database of their own (BENCH_ALERT_DATABASE, default
heartbeat_bench_alert: no live channel sees these events), one webhook channel to a real HTTP
receiver on localhost. The producer sends 1,000 readings/s (1,000 customers) for
BENCH_ALERT_SECONDS (>= 60); after a warm-up, ALERT_PROBES customers with a sustain window of
their own (customer_alert_settings, PROBE_SUSTAIN seconds) start sending 150 bpm once a second, one
more every second. For each episode: wall-clock send of the completing reading -> first `open`
webhook for that customer. Printed beside the job's own micro-batch durations from the same run
and the load average. Needs `make infra`; stop the supervised job and producer first.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
from kafka import KafkaProducer

from benchmarks.stream_job import Topics, _percentile, _query_id, _start_job
from heartbeat_contract import encode_reading
from heartbeat_contract.kafka_security import ADMIN, kafka_client_args
from heartbeat_ops import database
from heartbeat_ops.config import StackConfig, load, var_dir
from heartbeat_ops.programs import venv_bin
from tests.support.notifier import NotifierProcess, only_webhook_channel
from tests.support.receivers import WebhookReceiver
from tests.support.stream_job import wait_for

DATABASE = os.environ.get("BENCH_ALERT_DATABASE") or "heartbeat_bench_alert"
SECONDS = max(60, int(os.environ.get("BENCH_ALERT_SECONDS", "75")))
RATE = 1000
CUSTOMERS = 1000
ALERT_PROBES = int(os.environ.get("BENCH_ALERT_PROBES", "40"))
PROBE_SUSTAIN = 10  # seconds: each probe customer's own sustain window
PROBE_BPM = 150
WARMUP = 15  # seconds of load before the first probe: the JVM compiles the hot path
TARGET_P99 = 2.0


class Probes(threading.Thread):
    """Probe customers at PROBE_BPM, each reading sent at its event time; records the wall-clock
    send time of each one's completing reading (first reading >= PROBE_SUSTAIN after its first)."""

    def __init__(self, stack: StackConfig, topic: str, customers: list[str]) -> None:
        super().__init__(daemon=True)
        self.stack, self.topic, self.customers = stack, topic, customers
        self.completing: dict[str, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        producer = KafkaProducer(**kafka_client_args(self.stack, ADMIN), acks="all",
                                 linger_ms=0)  # fmt: skip
        first: dict[str, float] = {}
        began, tick = time.monotonic(), 0
        while len(self.completing) < len(self.customers) and not self.stopped.is_set():
            for customer in self.customers[: tick + 1]:  # one more customer every second
                if customer in self.completing:
                    continue
                now = datetime.now(UTC)
                first.setdefault(customer, now.timestamp())
                key, value = encode_reading(customer, now, PROBE_BPM)
                producer.send(self.topic, key=key, value=value)
                if now.timestamp() - first[customer] >= PROBE_SUSTAIN:
                    self.completing[customer] = now.timestamp()
            producer.flush()
            tick += 1
            time.sleep(max(0.0, began + tick - time.monotonic()))
        producer.close()


def _received(receiver: WebhookReceiver, customers: set[str]) -> dict[str, float]:
    """customer -> arrival time of the first `open` webhook for them."""
    first: dict[str, float] = {}
    for request in list(receiver.received):
        body = request.json
        if body.get("status") == "open" and body.get("customer_id") in customers:
            first.setdefault(str(body["customer_id"]), request.at)
    return first


def _batches(stack: StackConfig, query_id: str) -> list[float]:
    with psycopg2.connect(stack.admin_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT batch_duration_ms FROM pipeline_metrics WHERE query_id = %s"
            " AND input_rows > 0 ORDER BY batch_id OFFSET 1",
            (query_id,),
        )
        return [float(ms) for (ms,) in cur.fetchall()]


def run() -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    stack = load().model_copy(update={"pg_database": DATABASE})
    database.bootstrap(stack)
    run_id = uuid.uuid4().hex[:6]
    customers = [f"alert-probe-{run_id}-{i:02d}" for i in range(ALERT_PROBES)]
    topics = Topics(stack)
    readings, alerts = topics.new("alert-readings"), topics.new("alerts-events", partitions=1)
    workdir = var_dir() / "bench" / f"alert-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    workdir.mkdir(parents=True)
    receiver = WebhookReceiver().start()
    conn = psycopg2.connect(stack.admin_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        only_webhook_channel(cur, receiver.url("/bench"))
        cur.executemany(
            "INSERT INTO customer_alert_settings (customer_id, sustain_seconds) VALUES (%s, %s)",
            [(customer, PROBE_SUSTAIN) for customer in customers],
        )
    job, _ = _start_job(stack, readings, workdir, KAFKA_ALERTS_TOPIC=alerts)
    log = Path(tempfile.mkdtemp(prefix="bench-alert-notifier-")) / "notifier.log"
    notifier = NotifierProcess(stack, alerts, f"bench-alert-{run_id}", log)
    probes = Probes(stack, readings, customers)
    try:
        wait_for((workdir / f"ck-{readings}" / "readings" / "commits" / "0").exists, 300,
                 "the job's first (empty) batch")  # fmt: skip
        notifier.start()
        print(f"{os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; logs {workdir},"
              f" {log}", flush=True)  # fmt: skip
        producer = subprocess.Popen(
            [
                venv_bin("heartbeat-producer"), "--topic", readings, "--customers",
                str(CUSTOMERS), "--rate", str(RATE), "--duration", str(SECONDS), "--seed", "7",
                "--log-level", "WARNING",
            ]
        )  # fmt: skip
        time.sleep(WARMUP)  # a stretch of load before the probes, not a synchronisation
        probes.start()
        producer.wait(timeout=SECONDS + 120)
        probes.join(timeout=PROBE_SUSTAIN + ALERT_PROBES + 60)
        load_average = os.getloadavg()
        wait_for(lambda: len(_received(receiver, set(customers))) >= len(probes.completing),
                 120, "every probe's webhook")  # fmt: skip
        received = _received(receiver, set(customers))
        latencies = [received[c] - at for c, at in probes.completing.items() if c in received]
        batches = _batches(stack, _query_id(workdir, readings))
    finally:
        probes.stopped.set()
        notifier.stop()
        job.stop()
        receiver.stop()
        with conn.cursor() as cur:
            cur.execute("DELETE FROM customer_alert_settings WHERE customer_id = ANY(%s)",
                        (customers,))  # fmt: skip
        conn.close()
        topics.close()
    p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
    print(
        f"load: {RATE:,} readings/s, {CUSTOMERS:,} customers, {SECONDS} s; {len(latencies)}"
        f" episodes ({ALERT_PROBES} probe customers at {PROBE_BPM} bpm, sustain"
        f" {PROBE_SUSTAIN} s)"
    )
    print(
        f"  completing reading sent -> webhook received: p50 {p50:.2f} s, p99 {p99:.2f} s,"
        f" max {max(latencies):.2f} s"
    )
    print(
        f"  the job's micro-batches in the same run ({len(batches)} with input, first left out):"
        f" p50 {_percentile(batches, 0.5):,.0f} ms, p99 {_percentile(batches, 0.99):,.0f} ms,"
        f" max {max(batches):,.0f} ms"
    )
    print(f"  load average (1/5/15 min) at the end of the load: {load_average[0]:.2f}"
          f" {load_average[1]:.2f} {load_average[2]:.2f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"  target p99 <= {TARGET_P99:g} s: {'met' if p99 <= TARGET_P99 else 'NOT met'}")
