"""Rollups, alert episodes and pipeline metrics on the real stack, through a crash."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from heartbeat_contract import encode_reading
from heartbeat_contract.alerts import alert_id
from heartbeat_stream.config import sink_id_for
from tests.support import kafka
from tests.support.alert_events import deduplicated, read_to_end
from tests.support.db import superuser_cursor, superuser_query
from tests.support.rollups import rollup_mismatches
from tests.support.sink_activity import kill_inside_the_batch_transaction
from tests.support.stream_job import StreamJob, wait_for

pytestmark = pytest.mark.integration

NORMAL, HIGH = 75, 150
ZERO = timedelta()


def scripted_readings(prefix: str, t0: datetime) -> list[tuple[bytes, bytes]]:
    """Patient P: 1 min normal, 3 min at 150 (one 165 peak), 1 min normal. Two calm others, and
    a device whose clock runs 4.5 minutes fast (it once pushed a watermark past everyone else).

    (key, value) pairs in the order the devices send them.
    """
    rates = [NORMAL] * 60 + [HIGH] * 90 + [165] + [HIGH] * 89 + [NORMAL] * 60
    sent = [(t0 + timedelta(seconds=i), f"{prefix}-P", bpm) for i, bpm in enumerate(rates)]
    for other in ("A", "B"):
        sent += [(t0 + timedelta(seconds=i), f"{prefix}-{other}", 60 + i % 30) for i in range(300)]
    fast = timedelta(minutes=4, seconds=30)
    sent += [(t0 + timedelta(seconds=i), f"{prefix}-FAST", 80) for i in range(0, 300, 5)]
    sent.sort()
    return [
        encode_reading(customer, moment + (fast if customer.endswith("FAST") else ZERO), bpm)
        for moment, customer, bpm in sent
    ]


def test_episode_rollups_and_metrics_survive_a_crash(stack, fresh_topic, alerts_topic, tmp_path):
    prefix = fresh_topic
    t0 = (datetime.now(UTC) - timedelta(minutes=20)).replace(second=0, microsecond=0)
    messages = scripted_readings(prefix, t0)
    kafka.publish(stack.kafka_bootstrap_servers, fresh_topic, messages)

    checkpoint = str(tmp_path / "checkpoint")
    sink_id = sink_id_for(checkpoint)
    job = StreamJob(
        stack,
        fresh_topic,
        checkpoint,
        tmp_path / "job.log",
        KAFKA_ALERTS_TOPIC=alerts_topic,
        HEARTBEAT_MAX_OFFSETS_PER_TRIGGER="120",
    )  # many batches: the episode spans them
    readings = lambda: superuser_query(  # noqa: E731
        stack, "SELECT count(*) FROM heart_rate_readings WHERE kafka_topic = %s", fresh_topic
    )[0][0]
    try:
        job.start()
        wait_for(lambda: readings() >= 300, 180, "some batches to commit", poll=0.05)
        # Killed inside a batch transaction that has moved readings and merged rollups, held
        # there by a lock this test takes (tests/support/sink_activity.py).
        committed = readings()
        kill_inside_the_batch_transaction(stack, job)
        assert readings() == committed, "the killed batch transaction committed readings"
        assert readings() < len(messages), "the job drained everything before the crash"
        job.start()
        wait_for(lambda: readings() == len(messages), 240, "the restarted job to catch up")
        # Rollups commit with their readings: equal to SQL over them, no waiting.
        with superuser_cursor(stack) as cur:
            assert rollup_mismatches(cur, fresh_topic) == []
        episodes = superuser_query(
            stack,
            "SELECT customer_id, kind, started_at, ended_at, extreme_bpm, readings"
            " FROM heart_rate_alerts WHERE sink_id = %s ORDER BY id",
            sink_id,
        )
        assert episodes == [
            (
                f"{prefix}-P",
                "tachycardia",
                t0 + timedelta(seconds=60),
                t0 + timedelta(seconds=240),
                165,
                180,
            )
        ]

        # Its lifecycle on the topic, at least once: open, then resolved, one alert_id.
        wait_for(
            lambda: len(deduplicated(read_to_end(stack.kafka_bootstrap_servers, alerts_topic)))
            >= 2,
            60, "the episode's resolved event",
        )  # fmt: skip
        published = deduplicated(read_to_end(stack.kafka_bootstrap_servers, alerts_topic))
        assert [(p["customer_id"], p["kind"], p["status"]) for p in published] == [
            (f"{prefix}-P", "tachycardia", "open"),
            (f"{prefix}-P", "tachycardia", "resolved"),
        ]
        assert {p["alert_id"] for p in published} == {
            alert_id(f"{prefix}-P", "tachycardia", t0 + timedelta(seconds=60))
        }
        # Keyed by customer id, like the readings: one customer's alerts stay in order.
        records = kafka.read_to_end(stack.kafka_bootstrap_servers, alerts_topic)
        assert {record.key for record in records} == {f"{prefix}-P".encode()}

        # This query's own progress rows (its id is in the checkpoint): every message was read
        # by one of its batches; a batch the crash interrupted is read, and counted, again. The
        # last batch's row follows its commit (the progress listener): polled, not assumed.
        query_id = json.loads(Path(checkpoint, "readings", "metadata").read_text())["id"]
        progress = lambda: superuser_query(  # noqa: E731
            stack,
            "SELECT count(*), coalesce(sum(input_rows), 0) FROM pipeline_metrics"
            " WHERE query_id = %s",
            query_id,
        )[0]
        # The listener records a batch's progress after the batch's own commit: poll for it.
        wait_for(
            lambda: progress()[0] >= len(messages) // 120 and progress()[1] >= len(messages),
            60, "the last batches' progress rows",
        )  # fmt: skip
    finally:
        job.stop()
        superuser_query(
            stack, "DELETE FROM heart_rate_minute WHERE customer_id LIKE %s", f"{prefix}-%"
        )
