"""The job's one outbox publisher (sinks/alert_outbox.OutboxPublisher), shared by the sink, the
silence check and the baseline pass: several threads publishing at once send each pending event
exactly once, and every one ends marked published."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from heartbeat_contract.alerts import OPEN, TACHYCARDIA, alert_event
from heartbeat_stream.config import JobConfig
from heartbeat_stream.sinks import alert_outbox
from tests.support import alert_events, kafka_login

pytestmark = pytest.mark.integration

EVENTS = 2_500  # more than one page of pending events (1,000)
THREADS = 4


@pytest.fixture
def outbox(stack, app_db, fresh_topic, tmp_path):
    run = uuid.uuid4().hex[:8]
    kafka_login.grant_job(stack.kafka_bootstrap_servers, stack.kafka_topic, fresh_topic)
    config = JobConfig.model_validate(stack.model_dump(by_alias=True)).model_copy(
        update={
            "kafka_alerts_topic": fresh_topic,
            "checkpoint_dir": str(tmp_path / "checkpoint"),
            "sink_id": f"outbox-{run}",
        }
    )
    start = datetime(2026, 11, 1, tzinfo=UTC)
    with app_db, app_db.cursor() as cur:
        for n in range(EVENTS):
            event = alert_event(
                customer_id=f"T18O-{run}-{n % 50:02d}",
                kind=TACHYCARDIA,
                status=OPEN,
                started_at=start + timedelta(minutes=n),
                last_reading_at=start + timedelta(minutes=n),
                extreme_bpm=130,
                readings=12,
            )
            alert_outbox.record(cur, config.sink_id, event)
    yield config
    with psycopg2.connect(stack.admin_dsn) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM alert_events WHERE sink_id = %s", (config.sink_id,))
    conn.close()


def test_threads_sharing_the_publisher_send_each_event_once(stack, app_db, outbox):
    publisher = alert_outbox.OutboxPublisher.for_job(outbox)
    sent: list[int] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(THREADS)

    def publish() -> None:
        try:
            gate.wait()
            sent.append(publisher.publish())
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=publish) for _ in range(THREADS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        publisher.close()
    assert errors == []
    assert sum(sent) == EVENTS  # one thread took them all; the others found none left
    on_topic = alert_events.read_to_end(stack.kafka_bootstrap_servers, outbox.kafka_alerts_topic)
    ids = [event["event_id"] for event in on_topic]
    assert len(ids) == EVENTS and len(set(ids)) == EVENTS
    with app_db, app_db.cursor() as cur:
        cur.execute(
            "SELECT count(*) FILTER (WHERE published_at IS NULL), array_agg(event_id)"
            " FROM alert_events WHERE sink_id = %s",
            (outbox.sink_id,),
        )
        unpublished, recorded = cur.fetchone()
    assert unpublished == 0 and set(recorded) == set(ids)
