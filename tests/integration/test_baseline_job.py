"""The personal baseline through the real job (spark-submit, its own baseline timer, its outbox
publisher): a history loaded with the history loader ending now, with the baseline scenario's
three scripted customers; the job, started with a short baseline refresh, publishes exactly one
`elevated_resting` open event on the alerts topic, the +8 bpm customer's, and its later passes
publish nothing more (tests/integration/test_baseline.py drives the pass itself)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg2
import pytest

from heartbeat_contract.alerts import ELEVATED_RESTING, OPEN
from heartbeat_ops import history
from heartbeat_stream.config import sink_id_for
from tests.support import alert_events, kafka
from tests.support.stream_job import StreamJob, wait_for

pytestmark = pytest.mark.integration

DAYS = 12  # 7 days of baseline before the two judged, with room for the partial first day
REFRESH_SECONDS = 5


@pytest.fixture
def scenario(stack):
    """The scenario's customers plus three ordinary ones, 12 days up to now."""
    run = uuid.uuid4().hex[:8]
    end = datetime.now(UTC).replace(microsecond=0)
    plan = history.HistoryPlan(
        customers=6, days=DAYS, interval_seconds=300, end=end, seed=11,
        tag=f"test-baseline-job-{run}", customer_prefix=f"tj{run}-H",
        scripts=history.baseline_scenario(end, DAYS, seed=11),
    )  # fmt: skip
    superuser = psycopg2.connect(stack.admin_dsn)
    try:
        history.load(superuser, plan, show_progress=False)
        yield plan
    finally:
        history.delete(superuser, plan.tag)
        with superuser, superuser.cursor() as cur:
            for table in ("customer_resting_days", "customer_baselines", "baseline_day_sources"):
                cur.execute(
                    f"DELETE FROM {table} WHERE customer_id LIKE %s",
                    (f"{plan.customer_prefix}%",),
                )
        superuser.close()


@pytest.fixture
def alerts_topic(stack):
    with kafka.temporary_topic(stack.kafka_bootstrap_servers, prefix="test-alerts") as name:
        yield name


def test_the_job_publishes_one_elevated_resting_for_the_shifted_customer(
    stack, scenario, fresh_topic, alerts_topic, tmp_path
):
    checkpoint = str(tmp_path / "checkpoint")
    log_path = tmp_path / "job.log"
    job = StreamJob(
        stack, fresh_topic, checkpoint, log_path,
        KAFKA_ALERTS_TOPIC=alerts_topic,
        HEARTBEAT_BASELINE_REFRESH_SECONDS=str(REFRESH_SECONDS),
    )  # fmt: skip
    shifted = f"{scenario.customer_prefix}{history.SHIFTED + 1:04d}"
    ours = scenario.customer_prefix

    def passes() -> int:
        return log_path.read_text(errors="replace").count("baseline pass: PassSummary")

    def our_events() -> list[dict]:
        events = alert_events.read_to_end(stack.kafka_bootstrap_servers, alerts_topic)
        return [e for e in events if str(e["customer_id"]).startswith(ours)]

    job.start()
    try:
        wait_for(lambda: bool(our_events()), timeout=300, what="an elevated_resting event",
                 poll=2)  # fmt: skip
        first = passes()
        wait_for(lambda: passes() >= first + 2, timeout=180, what="two more baseline passes",
                 poll=1)  # fmt: skip
        events = our_events()
    finally:
        job.stop()
        with psycopg2.connect(stack.admin_dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT a.customer_id, a.kind, a.ended_at, e.published_at IS NOT NULL"
                " FROM heart_rate_alerts a JOIN alert_events e USING (alert_id)"
                " WHERE a.sink_id = %s AND a.customer_id LIKE %s",
                (sink_id_for(checkpoint), f"{ours}%"),
            )
            recorded = cur.fetchall()
            cur.execute("DELETE FROM heart_rate_alerts WHERE sink_id = %s",
                        (sink_id_for(checkpoint),))  # fmt: skip
            cur.execute("DELETE FROM alert_events WHERE sink_id = %s", (sink_id_for(checkpoint),))
        conn.close()
    # Exactly one event of this history's customers: the shifted customer's open
    # elevated_resting; the +-3 bpm and workout customers (and the ordinary ones) have none.
    assert [(e["customer_id"], e["kind"], e["status"]) for e in events] == [
        (shifted, ELEVATED_RESTING, OPEN)
    ]
    assert (events[0]["severity"], events[0]["readings"]) == ("warning", 2)
    # The episode and its event are recorded for the job's sink, still open, published.
    assert recorded == [(shifted, ELEVATED_RESTING, None, True)]
