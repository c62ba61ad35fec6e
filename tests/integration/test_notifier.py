"""The notifier end to end: the real heartbeat-notifier process on a fresh alerts topic with its
own consumer group, real Kafka and PostgreSQL, a real HTTP receiver and a real SMTP server. Alert
events are published here with the contract's own functions, as the job publishes them."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from heartbeat_contract.alerts import (
    CRITICAL_HIGH,
    OPEN,
    RESOLVED,
    TACHYCARDIA,
    alert_event,
    encode_event,
)  # fmt: skip
from heartbeat_notifier import delivery, failing_channels, ledger, messages, service
from heartbeat_notifier.config import load as load_notifier_config
from heartbeat_notifier.events import Channel, parse_event
from heartbeat_notifier.service import Notifier
from heartbeat_notifier.signing import verify
from heartbeat_ops.programs import venv_bin
from tests.support import kafka
from tests.support.kafka import client_args
from tests.support.notifier import TOKEN, NotifierProcess
from tests.support.receivers import BLOCK, SmtpReceiver, WebhookReceiver
from tests.support.stream_job import wait_for

pytestmark = pytest.mark.integration
OPS = venv_bin("heartbeat-ops")


@pytest.fixture
def admin(stack):
    """The superuser on the tests' database; channels of earlier tests are removed first."""
    conn = psycopg2.connect(stack.admin_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("UPDATE notify_channels SET removed_at = now() WHERE removed_at IS NULL")
    yield conn
    conn.close()


@pytest.fixture
def receiver():
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def smtp():
    server = SmtpReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def notifier(stack, fresh_topic, tmp_path, smtp):
    process = NotifierProcess(stack, fresh_topic, f"test-notifier-{uuid.uuid4().hex[:8]}",
                              tmp_path / "notifier.log", HEARTBEAT_SMTP_HOST="127.0.0.1",
                              HEARTBEAT_SMTP_PORT=str(smtp.port))  # fmt: skip
    yield process
    process.stop()


@pytest.fixture
def publish(stack, fresh_topic):
    producer = KafkaProducer(**client_args(stack.kafka_bootstrap_servers), acks="all")

    def send(event: dict[str, object]) -> dict[str, object]:
        key, value = encode_event(event)
        producer.send(fresh_topic, key=key, value=value).get(30)
        return event

    yield send
    producer.close()


def ops(stack, *args: str) -> str:
    """heartbeat-ops against the tests' database; its stdout."""
    env = {**__import__("os").environ, **stack.environment()}
    done = subprocess.run([OPS, *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def add_webhook(stack, url: str, *options: str) -> tuple[int, str]:
    printed = json.loads(ops(stack, "notify", "add-webhook", url, *options, "--json"))
    assert set(printed) == {"id", "secret"}
    return printed["id"], printed["secret"]


def episode(customer: str, kind: str = TACHYCARDIA, minutes_ago: float = 5):
    """The open and resolved events of one episode, as the job publishes them."""
    started = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    common = {"customer_id": customer, "kind": kind, "started_at": started, "readings": 70,
              "extreme_bpm": 150 if kind == TACHYCARDIA else 200}  # fmt: skip
    opened = alert_event(status=OPEN, last_reading_at=started + timedelta(seconds=60), **common)
    resolved = alert_event(status=RESOLVED, ended_at=started + timedelta(seconds=90),
                           last_reading_at=started + timedelta(seconds=89), **common)  # fmt: skip
    return opened, resolved


def deliveries(admin, channel: int) -> list[tuple]:
    with admin.cursor() as cur:
        cur.execute(
            "SELECT event_id, alert_status, outcome, attempts, http_status, last_error"
            " FROM notify_deliveries WHERE channel_id = %s ORDER BY created_at",
            (channel,),
        )
        return cur.fetchall()


def finished(admin, channel: int, count: int) -> bool:
    rows = deliveries(admin, channel)
    return len(rows) == count and all(row[2] != "pending" for row in rows)


def test_signed_posts_per_matching_channel_and_email(
    stack, admin, receiver, smtp, notifier, publish
):
    everything, secret = add_webhook(stack, receiver.url("/all"))
    critical, critical_secret = add_webhook(stack, receiver.url("/critical"), "--severity",
                                            "critical")  # fmt: skip
    mail = json.loads(ops(stack, "notify", "add-email", "care@example.org", "--json"))["id"]
    notifier.start()
    tachy_open, tachy_resolved = episode("N-TACHY")
    critical_open, _ = episode("N-CRIT", CRITICAL_HIGH)
    for event in (tachy_open, tachy_resolved, critical_open):
        publish(event)

    wait_for(lambda: finished(admin, everything, 3) and finished(admin, critical, 1)
             and finished(admin, mail, 3), 90, "every matching delivery recorded")  # fmt: skip
    posts = receiver.at("/all")
    tachy = [(p.json["alert_id"], p.json["status"]) for p in posts if p.json["kind"] == TACHYCARDIA]
    assert tachy == [(tachy_open["alert_id"], OPEN), (tachy_open["alert_id"], RESOLVED)]
    assert len(posts) == 3, "one POST per event per channel"
    for post in posts:
        assert verify(secret, post.body, post.headers["x-heartbeat-signature"])
        assert not verify(critical_secret, post.body, post.headers["x-heartbeat-signature"])
        assert post.headers["x-heartbeat-timestamp"] == str(post.json["sent_at"])
        assert abs(int(post.headers["x-heartbeat-timestamp"]) - post.at) < 60
        assert post.headers["x-heartbeat-delivery"] == post.json["delivery_id"]
    only_critical = receiver.at("/critical")
    assert [p.json["event_id"] for p in only_critical] == [critical_open["event_id"]]
    assert verify(critical_secret, only_critical[0].body,
                  only_critical[0].headers["x-heartbeat-signature"])  # fmt: skip
    assert all(row[2:5] == ("delivered", 1, 200) for row in deliveries(admin, everything))

    wait_for(lambda: len(smtp.messages) == 3, 30, "three e-mails")
    subjects = sorted(m["Subject"] for m in smtp.messages)
    assert subjects == sorted([
        "[heartbeat] WARNING tachycardia open: customer N-TACHY",
        "[heartbeat] WARNING tachycardia resolved: customer N-TACHY",
        "[heartbeat] CRITICAL critical_high open: customer N-CRIT",
    ])  # fmt: skip
    opened = next(
        m for m in smtp.messages if m["Subject"].endswith("tachycardia open: customer N-TACHY")
    )
    text = opened.get_body(("plain",)).get_content()
    link = "http://dashboards.example:8088/superset/dashboard/customer-detail/?native_filters="
    assert link in text and "N-TACHY" in text and "extreme bpm: 150" in text
    assert f"heartbeat-ops alerts ack {tachy_open['alert_id']}" in text
    assert link in opened.get_body(("html",)).get_content()
    assert opened["To"] == "care@example.org"

    assert "test event delivered (200)" in ops(stack, "notify", "test", str(everything))
    probe = receiver.at("/all")[-1]
    assert probe.json["test"] is True and probe.json["customer_id"] == "TEST"
    assert verify(secret, probe.body, probe.headers["x-heartbeat-signature"])
    assert len(deliveries(admin, everything)) == 3, "a test event is not in the delivery log"


def test_retries_until_delivered_and_a_refusal_is_dead(stack, admin, receiver, notifier, publish):
    receiver.scripts["/flaky"] = [500, 500, 500, 200]
    receiver.scripts["/refuses"] = [400]
    receiver.scripts["/busy"] = [(429, 1), 200]
    # Of one kind: the refusing channel's delivery_failing notice (tested below) is not theirs.
    flaky, _ = add_webhook(stack, receiver.url("/flaky"), "--kind", TACHYCARDIA)
    refuses, _ = add_webhook(stack, receiver.url("/refuses"), "--kind", TACHYCARDIA)
    busy, _ = add_webhook(stack, receiver.url("/busy"), "--kind", TACHYCARDIA)
    notifier.start()
    opened, _ = episode("N-RETRY")
    publish(opened)

    wait_for(lambda: all(finished(admin, c, 1) for c in (flaky, refuses, busy)), 90,
             "the three deliveries finished")  # fmt: skip
    assert deliveries(admin, flaky)[0][2:5] == ("delivered", 4, 200)
    assert len(receiver.at("/flaky")) == 4
    assert len({r.headers["x-heartbeat-delivery"] for r in receiver.at("/flaky")}) == 1
    outcome, attempts, status, error = deliveries(admin, refuses)[0][2:6]
    assert (outcome, attempts, status) == ("dead", 1, 400) and "400" in error
    assert len(receiver.at("/refuses")) == 1, "no retry of a 4xx"
    assert deliveries(admin, busy)[0][2:5] == ("delivered", 2, 200)
    first, second = receiver.at("/busy")
    assert second.at - first.at >= 0.9, "Retry-After: 1 honoured"
    with admin.cursor() as cur:
        cur.execute("SELECT http_status, attempts FROM notify_dead_deliveries"
                    " WHERE channel_id = %s", (refuses,))  # fmt: skip
        assert cur.fetchall() == [(400, 1)], "the dashboards' view of dead deliveries"
    listing = ops(stack, "notify", "list", "--json")
    row = next(c for c in json.loads(listing) if c["id"] == refuses)
    assert row["dead"] == 1


def _failures(admin, channel: int) -> list[tuple]:
    with admin.cursor() as cur:
        cur.execute("SELECT alert_id, dead, ended_at IS NULL FROM notify_channel_failures"
                    " WHERE channel_id = %s ORDER BY started_at", (channel,))  # fmt: skip
        return cur.fetchall()


def test_a_failing_channel_is_told_once_on_the_others_and_resolved_when_it_delivers_again(
    stack, admin, receiver, fresh_topic, tmp_path
):
    """A channel whose deliveries go dead reaches nobody and cannot say so itself. Its first
    dead delivery opens one critical delivery_failing notice for every other channel that
    takes it (not itself, not a channel of other kinds); more dead deliveries are counted in
    it and never sent again; once the channel delivers and stays quiet for
    HEARTBEAT_NOTIFY_RECOVERED_AFTER_SECONDS, the notice is resolved on the same channels."""
    receiver.scripts["/gone"] = [410]
    gone, _ = add_webhook(stack, receiver.url("/gone"))
    watcher, secret = add_webhook(stack, receiver.url("/watcher"), "--severity", "critical")
    tachycardia_only, _ = add_webhook(stack, receiver.url("/tachy"), "--kind", TACHYCARDIA)
    group = f"test-notifier-{uuid.uuid4().hex[:8]}"
    notifier = NotifierProcess(stack, fresh_topic, group, tmp_path / "notifier.log",
                               HEARTBEAT_NOTIFY_RECOVERED_AFTER_SECONDS="3")  # fmt: skip
    servers = stack.kafka_bootstrap_servers
    failing = f'heartbeat_notifier_channel_failing{{channel="{gone}"}}'
    try:
        notifier.start()
        warnings = [episode(f"N-FAILING-{n}")[0] for n in range(3)]  # warning: not for watcher
        kafka.publish(servers, fresh_topic, [encode_event(e) for e in warnings])
        wait_for(lambda: finished(admin, gone, 3), 60, "the gone channel's deliveries dead")
        wait_for(lambda: finished(admin, watcher, 1), 60, "the notice on the watching channel")
        assert {row[2] for row in deliveries(admin, gone)} == {"dead"}
        [(alert, dead, is_open)] = _failures(admin, gone)
        assert (dead, is_open) == (3, True), "three dead deliveries, one open notice"
        assert len(deliveries(admin, watcher)) == 1, "told once, not once per dead delivery"
        [told] = receiver.at("/watcher")
        assert verify(secret, told.body, told.headers["x-heartbeat-signature"])
        notice = told.json
        assert (notice["kind"], notice["status"], notice["severity"]) == (
            "delivery_failing", OPEN, "critical")  # fmt: skip
        assert (notice["alert_id"], notice["channel_id"]) == (alert, gone)
        assert notice["channel"] == f"{gone} (webhook to http://127.0.0.1)", "no path: no secret"
        assert "410" in notice["last_error"]
        assert notice["dashboard_url"].endswith("/superset/dashboard/pipeline-operations/")
        wait_for(lambda: finished(admin, tachycardia_only, 3), 60,
                 "the tachycardia channel's own events, and no notice")  # fmt: skip
        assert len(receiver.at("/gone")) == 3, "its own notice is not owed to itself"
        wait_for(lambda: notifier.metric(failing) == 1, 30, "the failing channel on /metrics")

        receiver.scripts["/gone"] = [200]
        kafka.publish(servers, fresh_topic, [encode_event(episode("N-FAILING-BACK")[0])])
        wait_for(lambda: finished(admin, watcher, 2), 60, "the notice resolved")
        assert [r[2] for r in deliveries(admin, gone)][-1] == "delivered"
        resolved = receiver.at("/watcher")[1].json
        assert (resolved["alert_id"], resolved["status"], resolved["readings"]) == (
            alert, RESOLVED, 3)  # fmt: skip
        assert resolved["ended_at"] is not None
        assert _failures(admin, gone)[0][2] is False
        wait_for(lambda: notifier.metric(failing) is None, 30, "no failing channel on /metrics")
        wait_for(lambda: finished(admin, tachycardia_only, 4), 60, "the tachy channel's fourth")
    finally:
        notifier.stop()
    assert len(receiver.at("/watcher")) == 2, "the notice opened and resolved, nothing more"


def test_a_channel_too_slow_for_its_traffic_is_told_on_the_others_and_resolved_once_caught_up(
    stack, admin, receiver, fresh_topic, tmp_path
):
    """A receiver that holds its requests goes dead only once its attempts run out (minutes
    each); long before that, its backlog is late. Once its oldest pending delivery has waited
    HEARTBEAT_NOTIFY_LATE_SECONDS the channel is failing: one notice on the others, resolved
    once it has caught up."""
    receiver.scripts["/slow"] = [BLOCK]
    slow, _ = add_webhook(stack, receiver.url("/slow"))
    watcher, _ = add_webhook(stack, receiver.url("/watcher"), "--severity", "critical")
    notifier = NotifierProcess(stack, fresh_topic, f"test-notifier-{uuid.uuid4().hex[:8]}",
                               tmp_path / "notifier.log", HEARTBEAT_NOTIFY_CONCURRENCY="1",
                               HEARTBEAT_NOTIFY_TIMEOUT_SECONDS="600",
                               HEARTBEAT_NOTIFY_LATE_SECONDS="3",
                               HEARTBEAT_NOTIFY_RECOVERED_AFTER_SECONDS="2")  # fmt: skip
    events = [episode(f"N-SLOW-{n}")[0] for n in range(4)]
    try:
        notifier.start()
        kafka.publish(stack.kafka_bootstrap_servers, fresh_topic,
                      [encode_event(e) for e in events])  # fmt: skip
        wait_for(lambda: finished(admin, watcher, 1), 60, "the late channel's notice")
        assert {row[2] for row in deliveries(admin, slow)} == {"pending"}, "none dead yet"
        notice = receiver.at("/watcher")[0].json
        assert (notice["kind"], notice["status"], notice["channel_id"]) == (
            "delivery_failing", OPEN, slow)  # fmt: skip
        assert notice["readings"] == 0, "no dead delivery"
        assert re.fullmatch(r"4 deliveries waiting, the oldest for \d+ s", notice["last_error"])

        receiver.released.set()
        receiver.scripts["/slow"] = [200]
        wait_for(lambda: finished(admin, slow, 4), 60, "the backlog delivered")
        wait_for(lambda: finished(admin, watcher, 2), 60, "the notice resolved once caught up")
    finally:
        receiver.released.set()
        notifier.stop()
    resolved = receiver.at("/watcher")[1].json
    assert (resolved["alert_id"], resolved["status"]) == (notice["alert_id"], RESOLVED)
    assert {row[2] for row in deliveries(admin, slow)} == {"delivered"}


def test_a_removed_channels_backlog_ends_dead_and_shows_among_the_dead(stack, admin, receiver):
    """A removed channel is never delivered to again: what it still owed is ended dead by
    `notify remove`, not left pending in the log for good; and if it was failing, its notice is
    resolved on the channels that were told."""
    hook, _ = add_webhook(stack, receiver.url("/removed"))
    watcher, _ = add_webhook(stack, receiver.url("/watcher"))
    channel = Channel(hook, "webhook", receiver.url("/removed"), "json", "warning", (), "x")
    events = [parse_event(encode_event(e)[1]) for e in episode("N-REMOVED")]
    with admin.cursor() as cur:
        ledger.record_owed(cur, [ledger.Owed(channel, event, None) for event in events])
        failure = failing_channels.failed(cur, channel, "HTTP 410", dead=1)
    assert failure is not None
    assert "2 pending deliveries ended dead" in ops(stack, "notify", "remove", str(hook))
    assert [(row[2], row[5]) for row in deliveries(admin, hook)] == [
        ("dead", "channel removed before delivery")] * 2  # fmt: skip
    with admin.cursor() as cur:
        cur.execute("SELECT count(*) FROM notify_dead_deliveries WHERE channel_id = %s", (hook,))
        assert cur.fetchone()[0] == 2, "the dashboards' view of what the channel missed"
    assert _failures(admin, hook) == [(failure.alert_id, 1, False)], "failing no more"
    with admin.cursor() as cur:
        cur.execute("SELECT alert_id, alert_status, kind, outcome FROM notify_deliveries"
                    " WHERE channel_id = %s", (watcher,))  # fmt: skip
        assert cur.fetchall() == [(failure.alert_id, RESOLVED, "delivery_failing", "pending")]


def test_started_before_its_topic_exists_it_waits_unhealthy_then_delivers(
    stack, admin, receiver, tmp_path
):
    """A group joined before the topic is visible can be handed no partitions and read nothing
    until a later rebalance; the notifier waits for the topic first, unhealthy, and says so."""
    topic = f"test-late-{uuid.uuid4().hex[:12]}"
    hook, _ = add_webhook(stack, receiver.url("/late"))
    notifier = NotifierProcess(stack, topic, f"test-notifier-{uuid.uuid4().hex[:8]}",
                               tmp_path / "notifier.log", topic_exists=False)  # fmt: skip
    notifier.launch()
    try:
        wait_for(lambda: "not visible after" in notifier.log_path.read_text(), 60,
                 "the notifier to say it waits for its topic")  # fmt: skip
        assert notifier.process.poll() is None and not notifier.healthy()
        kafka.create_topic(stack.kafka_bootstrap_servers, topic)
        wait_for(notifier.healthy, 60, "notifier /health once the topic exists")
        opened, _ = episode("N-LATE")
        kafka.publish(stack.kafka_bootstrap_servers, topic, [encode_event(opened)])
        # 120 s: under heavy load a consumer stuck after its join is replaced after 30 s
        wait_for(lambda: finished(admin, hook, 1), 120, "the delivery")
        assert deliveries(admin, hook)[0][2:5] == ("delivered", 1, 200)
    finally:
        notifier.stop()
        kafka.delete_topics(stack.kafka_bootstrap_servers, topic)


@pytest.fixture
def notifier_here(request, stack, fresh_topic, monkeypatch):
    """A notifier on `fresh_topic` in this process, driven by the test one round at a time
    (Notifier.step / Notifier.read), with its own group; a test's indirect parameter is a dict
    of settings for it."""
    process = NotifierProcess(stack, fresh_topic, f"test-notifier-{uuid.uuid4().hex[:8]}",
                              Path("/dev/null"), **getattr(request, "param", {}))  # fmt: skip
    for name, value in process.env.items():
        monkeypatch.setenv(name, value)
    notifier = Notifier(load_notifier_config())
    yield notifier
    notifier.stop()
    notifier.dispatcher.close()
    notifier.consumer.close(autocommit=False)
    notifier.db.close()


def driving(round_of_work, condition):
    """A wait_for condition that does one round of the notifier's work before each check."""

    def check() -> bool:
        round_of_work()
        return condition()

    return check


def _failing_once(real, error: Exception):
    """`real`, except that its first call raises `error`; `.failed` says whether it has."""
    failed = threading.Event()

    def call(*args, **kwargs):
        if not failed.is_set():
            failed.set()
            raise error
        return real(*args, **kwargs)

    call.failed = failed
    return call


def test_a_failed_feeder_pass_is_logged_and_the_next_one_delivers(
    stack, admin, receiver, notifier_here, publish, monkeypatch, caplog
):
    """The feeder thread is the only one that starts deliveries: a pass that raises something
    unforeseen must not end it (the notifier would read and record, healthy, and tell nobody)."""
    notifier = notifier_here
    hook, _ = add_webhook(stack, receiver.url("/feeder"))
    broken = _failing_once(ledger.lease_due, RuntimeError("an unforeseen failure in the feeder"))
    monkeypatch.setattr(ledger, "lease_due", broken)
    publish(episode("N-FEEDER")[0])
    wait_for(driving(notifier.step, lambda: finished(admin, hook, 1)), 60,
             "the delivery after the failed pass", poll=0)  # fmt: skip
    assert broken.failed.is_set() and "a feeder pass failed" in caplog.text
    assert notifier.dispatcher.feeding() and notifier.healthy()
    assert deliveries(admin, hook)[0][2:4] == ("delivered", 1)


@pytest.mark.parametrize("notifier_here", [{"HEARTBEAT_NOTIFY_MAX_ATTEMPTS": "2"}], indirect=True)
def test_a_delivery_tried_again_after_a_database_failure_counts_the_attempts_it_made(
    stack, admin, receiver, notifier_here, publish, monkeypatch
):
    """The database fails right after an attempt was counted and sent: the delivery is tried
    again 5 s later from what the log says it made, never past HEARTBEAT_NOTIFY_MAX_ATTEMPTS."""
    notifier = notifier_here
    receiver.scripts["/stale"] = [500]
    hook, _ = add_webhook(stack, receiver.url("/stale"))
    blip = psycopg2.OperationalError("the database went away (the test's blip)")
    fails_once = _failing_once(ledger.record_failure, blip)
    monkeypatch.setattr(ledger, "record_failure", fails_once)
    publish(episode("N-STALE")[0])
    wait_for(driving(notifier.step, lambda: finished(admin, hook, 1)), 60,
             "the delivery given up", poll=0)  # fmt: skip
    assert fails_once.failed.is_set()
    assert deliveries(admin, hook)[0][2:5] == ("dead", 2, 500)
    assert len(receiver.at("/stale")) == 2, "two attempts in all, the one before the failure too"


def test_a_delivery_that_cannot_be_built_ends_dead_and_its_alerts_resolve_goes_out(
    stack, admin, receiver, notifier_here, publish, monkeypatch
):
    """A defect that fails one delivery every time, outside its attempts (here: its links
    cannot be made), is retried a few times and then dead with the reason. Before, it was
    retried every 5 s for good, holding a worker and every later event of its alert."""
    notifier = notifier_here
    hook, _ = add_webhook(stack, receiver.url("/unbuildable"))
    real_links = messages.links_for

    def links_for(event, **kwargs):
        if event["status"] == OPEN:
            raise RuntimeError("a link that cannot be made (the test's defect)")
        return real_links(event, **kwargs)

    monkeypatch.setattr(messages, "links_for", links_for)
    monkeypatch.setattr(delivery, "RETRY_SECONDS", 0.1)
    opened, resolved = [publish(event) for event in episode("N-UNBUILDABLE")]
    wait_for(driving(notifier.step, lambda: finished(admin, hook, 2)), 60,
             "the open dead and the resolve delivered", poll=0)  # fmt: skip
    rows = {row[0]: row for row in deliveries(admin, hook)}
    outcome, attempts, _, error = rows[opened["event_id"]][2:6]
    assert (outcome, attempts) == ("dead", 0), "never attempted: nothing was sent"
    assert (
        error == "cannot be delivered: RuntimeError: a link that cannot be made (the test's defect)"
    )
    assert rows[resolved["event_id"]][2] == "delivered"
    assert [r.json["status"] for r in receiver.at("/unbuildable")] == [RESOLVED]


def test_a_replaced_consumer_reads_what_waits_and_nothing_twice(
    stack, admin, receiver, notifier_here, publish
):
    """The stall guard's replacement (service.Notifier._rejoin): the new consumer joins the
    group, reads the event published before it, and the one already delivered and committed
    is not read again."""
    notifier = notifier_here
    hook, _ = add_webhook(stack, receiver.url("/rejoin"))
    first, second = episode("N-REJOIN")
    publish(first)
    wait_for(driving(notifier.step, lambda: finished(admin, hook, 1)), 60, "the first delivery",
             poll=0)  # fmt: skip
    wait_for(driving(notifier.step, lambda: not notifier.tracker.committable()), 30,
             "the first delivery committed", poll=0)  # fmt: skip
    old = notifier.consumer
    publish(second)
    notifier._rejoin(waiting=1)
    assert notifier.consumer is not old and notifier.metrics.rejoins == 1
    wait_for(driving(notifier.step, lambda: finished(admin, hook, 2)), 60,
             "the second delivery", poll=0)  # fmt: skip
    assert [r[1] for r in deliveries(admin, hook)] == [OPEN, RESOLVED], "each event once"
    assert len(receiver.at("/rejoin")) == 2


def test_a_rebalance_commits_what_is_recorded_and_the_notifier_reads_on(
    stack, admin, receiver, notifier_here, fresh_topic
):
    """A second member joins while an event is recorded but not yet committed: the
    revocation commits it, and the notifier reads on through that rebalance and the next.
    (The listener used to block on a commit on kafka-python's IO thread, which 3.0 refuses:
    the notifier's poll raised `User rebalance callback throws an error` and it exited.)"""
    notifier = notifier_here
    servers = stack.kafka_bootstrap_servers
    hook, _ = add_webhook(stack, receiver.url("/rebalance"))
    notifier.refresh_channels()  # read() alone matches events against the channels known
    opened, resolved = episode("N-REBALANCE")
    [(partition, offset)] = kafka.publish(servers, fresh_topic, [encode_event(opened)])
    wait_for(driving(notifier.read, lambda: finished(admin, hook, 1)), 60, "the delivery",
             poll=0)  # fmt: skip
    assert notifier.tracker.committable(), "recorded and not yet committed"
    joiner = KafkaConsumer(**client_args(servers), group_id=notifier.config.notifier_group,
                           enable_auto_commit=False)  # fmt: skip
    try:
        joiner.subscribe([fresh_topic])

        def both_assigned() -> bool:
            joiner.poll(timeout_ms=100)
            notifier.read()  # raised KafkaError with the blocking listener
            return bool(joiner.assignment()) and bool(notifier.consumer.assignment())

        wait_for(both_assigned, 60, "the rebalance between the notifier and the joiner", poll=0)
        committed = joiner.committed(TopicPartition(fresh_topic, partition))
        assert committed == offset + 1, "the revocation committed the recorded event"
    finally:
        joiner.close(autocommit=False)
    kafka.publish(servers, fresh_topic, [encode_event(resolved)])
    wait_for(driving(notifier.step, lambda: finished(admin, hook, 2)), 90,
             "the resolve, after the joiner left", poll=0)  # fmt: skip
    assert [r[1:4] for r in deliveries(admin, hook)] == [
        (OPEN, "delivered", 1), (RESOLVED, "delivered", 1)]  # fmt: skip
    assert len(receiver.at("/rebalance")) == 2, "each event once"


def _refused(*_: object) -> None:
    raise psycopg2.OperationalError("the database is away (the test's blip)")


def test_a_commit_while_the_group_rebalances_is_deferred_and_lands_after(
    stack, admin, receiver, notifier_here, fresh_topic, monkeypatch
):
    """An event's recording lands while the group rebalances (its first try was refused by
    the database), and the main loop's commit is refused (kafka-python raises
    RebalanceInProgressError until the member has rejoined) and is made in the rebalance. The
    notifier used to exit on that error (seen in a CI run). A newcomer starts the rebalance,
    and an idle member holds it open: it does not poll, so it never rejoins."""
    notifier = notifier_here
    servers = stack.kafka_bootstrap_servers
    group = notifier.config.notifier_group
    hook, _ = add_webhook(stack, receiver.url("/defer"))
    notifier.refresh_channels()
    left = threading.Event()
    # The rebalance is held open on purpose, with an event waiting: past STALL_SECONDS (a loaded
    # machine, seen right after `make up`) the stall guard replaced the consumer that owes the
    # deferred commit. That guard has tests of its own; this one is about the commit.
    monkeypatch.setattr(service, "STALL_SECONDS", 600.0)

    def member() -> KafkaConsumer:
        """A consumer of the group that sees the topic's partitions before it joins: a leader
        without them assigns nobody anything (seen in a CI-like run), as the notifier's
        _wait_until_visible guards against."""
        consumer = KafkaConsumer(**client_args(servers), group_id=group, enable_auto_commit=False)
        wait_for(lambda: consumer.partitions_for_topic(fresh_topic), 30, "the topic's partitions")
        consumer.subscribe([fresh_topic])
        return consumer

    idle = member()

    def newcomer() -> None:  # joins the group, which starts the rebalance
        consumer = member()
        while not left.is_set():
            consumer.poll(timeout_ms=100)
        consumer.close(autocommit=False)

    joiner = threading.Thread(target=newcomer, daemon=True)
    try:
        wait_for(driving(lambda: (idle.poll(timeout_ms=100), notifier.read()),
                         lambda: bool(idle.assignment()) and bool(notifier.consumer.assignment())),
                 60, "the idle member and the notifier both assigned", poll=0)  # fmt: skip
        mine = min(tp.partition for tp in notifier.consumer.assignment())
        [(partition, offset)] = kafka.publish(servers, fresh_topic, [encode_event(episode(
            "N-DEFER")[0])], mine)  # fmt: skip
        # The database refuses the recording until the notifier is rejoining: the revocation
        # has nothing to commit, and the retried recording lands mid-rebalance.
        with monkeypatch.context() as blip:
            blip.setattr(ledger, "record_owed", _refused)
            wait_for(driving(notifier.read, lambda: notifier._unrecorded is not None), 60,
                     "the event read, its recording refused", poll=0)  # fmt: skip
            revoked = notifier.metrics.rebalances
            joiner.start()
            wait_for(driving(notifier.read, lambda: notifier.metrics.rebalances > revoked), 60,
                     "the notifier rejoining (its partitions revoked)", poll=0)  # fmt: skip
        assert notifier.record(*notifier._unrecorded), "recorded once the database is back"
        assert notifier.tracker.committable(), "recorded mid-rebalance"
        notifier.commit()  # raised RebalanceInProgressError
        assert notifier.tracker.committable(), "deferred: nothing committed mid-rebalance"
        left.set()  # both members leave: the rebalance completes with the notifier alone,
        joiner.join(30)  # so the partition stays with it
        idle.close(autocommit=False)
        wait_for(driving(notifier.step, lambda: not notifier.tracker.committable()), 90,
                 "the deferred commit made in the rebalance", poll=0)  # fmt: skip
        assert notifier.consumer.committed(TopicPartition(fresh_topic, partition)) == offset + 1
        wait_for(lambda: finished(admin, hook, 1), 30, "the delivery")
        assert [r[1:4] for r in deliveries(admin, hook)] == [(OPEN, "delivered", 1)]
    finally:
        left.set()
        if joiner.ident is not None:
            joiner.join(30)
        idle.close(autocommit=False)


def _group_state(servers: str, group: str) -> str:
    admin = KafkaAdminClient(**client_args(servers))
    try:
        return admin.describe_groups([group])[group]["group_state"]
    finally:
        admin.close()


def _committed(servers: str, group: str, topic: str) -> int:
    """The group's committed offsets over the topic's partitions, summed."""
    consumer = KafkaConsumer(**client_args(servers), group_id=group, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or ()
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in partitions)
    finally:
        consumer.close(autocommit=False)


def test_a_dead_receiver_holds_up_only_its_own_channel_and_its_backlog_outlives_a_restart(
    stack, admin, receiver, fresh_topic, tmp_path, smtp
):
    """A receiver that hangs keeps its channel's threads (HEARTBEAT_NOTIFY_CONCURRENCY) and
    nothing else: the other channel gets every event, the offset is committed past all of them,
    and the dead channel's backlog waits in the delivery log. Before, the offset waited for
    every delivery and reading paused for every channel once 1,000 events waited on one
    receiver. After a SIGKILL and the receiver's return, the restarted notifier delivers the
    whole backlog from the log, each alert's open before its resolve."""
    servers = stack.kafka_bootstrap_servers
    group = f"test-notifier-{uuid.uuid4().hex[:8]}"
    receiver.scripts["/dead"] = [BLOCK]
    dead, _ = add_webhook(stack, receiver.url("/dead"))
    fast, _ = add_webhook(stack, receiver.url("/fast"))
    notifier = NotifierProcess(stack, fresh_topic, group, tmp_path / "notifier.log",
                               HEARTBEAT_NOTIFY_CONCURRENCY="2",
                               HEARTBEAT_NOTIFY_TIMEOUT_SECONDS="600")  # fmt: skip
    events = [e for n in range(15) for e in episode(f"N-DEAD-{n}")]
    try:
        notifier.start()
        kafka.publish(servers, fresh_topic, [encode_event(e) for e in events])
        wait_for(lambda: finished(admin, fast, len(events)), 60, "every event on the fast channel")
        wait_for(lambda: _committed(servers, group, fresh_topic) == len(events), 60,
                 "the offsets committed past the dead channel's backlog")  # fmt: skip
        assert [row[2] for row in deliveries(admin, dead)] == ["pending"] * len(events)
        assert len(receiver.at("/dead")) == 2, "the dead channel holds only its own two threads"
        # One refresh of the gauges (every 5 s) shows both: an earlier one may have read the
        # fast channel's rows before they were delivered.
        backlog = 'heartbeat_notifier_pending_deliveries{{channel="{}"}}'
        wait_for(lambda: notifier.metric(backlog.format(dead)) == len(events)
                 and notifier.metric(backlog.format(fast)) in (None, 0), 30,
                 "the dead channel's backlog on /metrics, the fast one owing nothing")  # fmt: skip

        notifier.kill()
        receiver.released.set()  # the held requests are answered to a dead process
        receiver.scripts["/dead"] = [200]
        notifier.start()
        wait_for(lambda: finished(admin, dead, len(events)), 120, "the backlog after restart")
    finally:
        receiver.released.set()
        notifier.stop()
    assert {r[2] for r in deliveries(admin, dead)} == {"delivered"}
    sent = [(r.json["alert_id"], r.json["status"]) for r in receiver.at("/dead")]
    assert set(sent) == {(e["alert_id"], e["status"]) for e in events}
    for alert in {e["alert_id"] for e in events}:
        statuses = [status for alert_id, status in sent if alert_id == alert]
        assert statuses.index(OPEN) < len(statuses) - 1 - statuses[::-1].index(RESOLVED), (
            "an alert's resolve never reaches a channel before its open"
        )
    assert len(receiver.at("/fast")) == len(events), "the fast channel's deliveries never again"


def test_sigkill_between_sending_and_recording_loses_nothing_and_resends_only_the_unrecorded(
    stack, admin, receiver, notifier, publish
):
    receiver.scripts["/slow"] = [BLOCK]
    slow, _ = add_webhook(stack, receiver.url("/slow"))
    fast, _ = add_webhook(stack, receiver.url("/fast"))
    notifier.start()
    events = [e for n in range(3) for e in episode(f"N-KILL-{n}")]
    for event in events:
        publish(event)

    # The slow receiver holds its requests; the fast channel is not held up by it.
    wait_for(lambda: finished(admin, fast, len(events)), 60, "fast channel delivered")
    wait_for(lambda: len(receiver.at("/slow")) >= 1, 30, "a request held by the slow receiver")
    assert all(row[2] == "pending" for row in deliveries(admin, slow))
    notifier.kill()  # sent, not recorded
    receiver.released.set()  # the held requests are answered to a dead process
    receiver.scripts["/slow"] = [200]
    notifier.start()

    # 120 s: a restart that hangs in kafka-python's poll is restarted again by its watchdog
    wait_for(lambda: finished(admin, slow, len(events)), 120,
             "slow channel delivered after restart")  # fmt: skip
    ledger = {(e["alert_id"], e["status"]) for e in events}
    for path, channel in (("/slow", slow), ("/fast", fast)):
        seen = {(r.json["alert_id"], r.json["status"]) for r in receiver.at(path)}
        assert seen == ledger, f"{path}: every (alert_id, status) at least once"
        rows = deliveries(admin, channel)
        assert sorted(r[0] for r in rows) == sorted(e["event_id"] for e in events)
        assert all(r[2] == "delivered" for r in rows), "delivered once, recorded once"
    assert len(receiver.at("/fast")) == len(events), "recorded deliveries are not sent again"
    held = [r for r in receiver.at("/slow")]
    assert len(held) > len(events), "some slow deliveries were sent twice (before and after)"


def test_a_stuck_main_loop_restarts_the_notifier_in_place_and_it_delivers(
    stack, admin, receiver, fresh_topic, tmp_path, publish
):
    """The main loop blocked (here its figures insert waits on a lock the test holds; in the
    field, kafka-python's poll that never returns): after HEARTBEAT_NOTIFIER_STUCK_SECONDS the
    notifier logs where it is stuck and re-executes itself, same pid, and delivers what was
    published meanwhile."""
    hook, _ = add_webhook(stack, receiver.url("/stuck"))
    notifier = NotifierProcess(stack, fresh_topic, f"test-notifier-{uuid.uuid4().hex[:8]}",
                               tmp_path / "notifier.log",
                               HEARTBEAT_NOTIFIER_STUCK_SECONDS="5").start()  # fmt: skip
    pid = notifier.process.pid
    locker = psycopg2.connect(stack.admin_dsn)
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE pipeline_metrics IN ACCESS EXCLUSIVE MODE")
        log = notifier.log_path
        # The next figures round (every 10 s) waits on the lock; 5 s later the watchdog acts.
        wait_for(lambda: "restarting the notifier in place" in log.read_text(), 60,
                 "the watchdog to restart the notifier")  # fmt: skip
        assert "in record_figures" in log.read_text(), "the log shows where the loop was stuck"
        opened, _ = episode("N-STUCK")
        publish(opened)
        locker.rollback()  # the lock goes; the restarted notifier's rounds come round again
        wait_for(notifier.healthy, 60, "the restarted notifier's /health")
        assert notifier.process.pid == pid and notifier.process.poll() is None, "same process"
        wait_for(lambda: finished(admin, hook, 1), 60, "the delivery after the restart")
        assert deliveries(admin, hook)[0][2:4] == ("delivered", 1)
        assert len(receiver.at("/stuck")) == 1
    finally:
        locker.close()
        notifier.stop()


def _post_ack(notifier: NotifierProcess, alert: str, token: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{notifier.base_url}/alerts/{alert}/ack", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_acknowledged_alert_is_not_renotified_but_its_resolve_is(
    stack, admin, receiver, notifier, publish
):
    receiver.scripts["/down"] = [503]
    first, _ = add_webhook(stack, receiver.url("/first"))
    down, _ = add_webhook(stack, receiver.url("/down"))
    notifier.start()
    by_http, by_http_resolved = episode("N-ACK-1")
    by_cli, _ = episode("N-ACK-2")
    publish(by_http)
    wait_for(lambda: finished(admin, first, 1), 60, "the open event delivered")
    wait_for(lambda: len(receiver.at("/down")) >= 2, 60, "the open event retried on /down")

    assert _post_ack(notifier, by_http["alert_id"], "wrong", {"by": "mallory"})[0] == 401
    assert _post_ack(notifier, by_http["alert_id"], "", {"by": "mallory"})[0] == 401
    status, ack = _post_ack(
        notifier, by_http["alert_id"], TOKEN, {"by": "nurse-a", "note": "calling"}
    )
    assert status == 201 and ack["acked_by"] == "nurse-a"
    assert _post_ack(notifier, by_http["alert_id"], TOKEN, {"by": "nurse-b"})[0] == 200
    assert _post_ack(notifier, "not-an-id", TOKEN, {"by": "nurse-b"})[0] == 400
    ops(stack, "notify", "ack", by_cli["alert_id"], "--by", "dr-b", "--note", "seen")
    with admin.cursor() as cur:
        cur.execute("SELECT alert_id, acked_by, note FROM alert_acks WHERE alert_id IN (%s, %s)"
                    " ORDER BY acked_by", (by_cli["alert_id"], by_http["alert_id"]))  # fmt: skip
        assert cur.fetchall() == [(by_cli["alert_id"], "dr-b", "seen"),
                                  (by_http["alert_id"], "nurse-a", "calling")]  # fmt: skip

    # The open event still being retried on /down stops: acknowledged meanwhile.
    wait_for(lambda: finished(admin, down, 1), 60, "the retried open event given up")
    assert deliveries(admin, down)[0][2] == "suppressed"
    tried = len(receiver.at("/down"))

    # A channel added now, then the acknowledged alert's open event redelivered: nothing sent
    # (suppressed); the resolve still reaches both channels.
    second, _ = add_webhook(stack, receiver.url("/second"))
    wait_for(lambda: notifier.metric("heartbeat_notifier_channels") == 3, 30, "channel re-read")
    publish(by_http)
    publish(by_cli)
    publish(by_http_resolved)
    wait_for(lambda: finished(admin, second, 3) and finished(admin, first, 3), 60,
             "every delivery recorded")  # fmt: skip
    assert all(r.json["status"] == RESOLVED for r in receiver.at("/down")[tried:])
    outcomes = {(r[0], r[2]) for r in deliveries(admin, second)}
    assert outcomes == {(by_http["event_id"], "suppressed"), (by_cli["event_id"], "suppressed"),
                        (by_http_resolved["event_id"], "delivered")}  # fmt: skip
    assert [p.json["status"] for p in receiver.at("/second")] == [RESOLVED]
    assert [(p.json["alert_id"], p.json["status"]) for p in receiver.at("/first")] == [
        (by_http["alert_id"], OPEN), (by_http["alert_id"], RESOLVED)
    ]  # fmt: skip


def test_the_notifier_role_has_only_what_it_needs(stack, admin):
    with admin.cursor() as cur:
        cur.execute(
            "INSERT INTO notify_channels (transport, target, format, secret)"
            " VALUES ('webhook', 'http://127.0.0.1:9/', 'json', 'not-for-dashboards') RETURNING id"
        )
    conn = psycopg2.connect(stack.notifier_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM notify_channels WHERE secret IS NOT NULL")
            assert cur.fetchone()[0] >= 1, "the notifier reads channels and their secrets"
            for statement in (
                "SELECT 1 FROM heart_rate_readings LIMIT 1",
                "SELECT 1 FROM heart_rate_alerts LIMIT 1",
                "UPDATE notify_channels SET secret = 'x'",
                "INSERT INTO notify_channels (transport, target, format)"
                " VALUES ('email', 'a@b', 'email')",
                "DELETE FROM notify_deliveries",
            ):
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cur.execute(statement)
    finally:
        conn.close()
    reader = psycopg2.connect(stack.reader_dsn)
    try:
        with reader.cursor() as cur:
            cur.execute("SELECT count(*) FROM notify_deliveries WHERE outcome = 'dead'")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("SELECT secret FROM notify_channels")
    finally:
        reader.close()


def test_open_unacknowledged_episodes_come_first(stack, admin):
    started = datetime.now(UTC) - timedelta(minutes=30)
    customers = [f"N-ATT-{uuid.uuid4().hex[:6]}-{n}" for n in range(3)]
    with admin.cursor() as cur:
        for n, customer in enumerate(customers):
            cur.execute(
                "INSERT INTO heart_rate_alerts (sink_id, customer_id, kind, started_at, ended_at,"
                " extreme_bpm, readings, last_reading_at) VALUES ('test-attention', %s,"
                " 'tachycardia', %s, %s, 150, 60, %s) RETURNING alert_id",
                (customer, started, started + timedelta(minutes=5) if n == 2 else None, started),
            )
            if n == 1:
                cur.execute("INSERT INTO alert_acks (alert_id, acked_by) VALUES (%s, 'nurse')",
                            (cur.fetchone()[0],))  # fmt: skip
        cur.execute(
            "SELECT customer_id, attention_rank, acked_by, age >= interval '29 minutes'"
            " FROM alert_attention WHERE customer_id = ANY(%s) ORDER BY attention_rank",
            (customers,),
        )
        assert cur.fetchall() == [(customers[0], 0, None, True), (customers[1], 1, "nurse", True),
                                  (customers[2], 2, None, False)]  # fmt: skip


def test_postgresql_outage_delays_deliveries_and_loses_none(
    stack, world, admin, receiver, notifier, publish
):
    channel, _ = add_webhook(stack, receiver.url("/outage"))
    notifier.start()
    # /health answers before the consumer has joined its group: one event delivered first shows
    # the notifier reading, so the outage meets its read loop (a CI run under load stopped
    # PostgreSQL while the notifier was still starting, and it never logged the wait).
    (warm_up, _) = episode("N-PGDOWN-WARM")
    publish(warm_up)
    wait_for(lambda: finished(admin, channel, 1), 60, "the warm-up event delivered")
    events = episode("N-PGDOWN")
    world.stop_postgres()
    try:
        for event in events:
            publish(event)
        # Both events may come in one poll: "cannot record 2 deliveries read".
        waiting = re.compile(r"cannot record \d deliveries read")
        wait_for(lambda: waiting.search(notifier.log_path.read_text()), 60,
                 "the notifier waiting for PostgreSQL")  # fmt: skip
        sent = [r.json["event_id"] for r in receiver.at("/outage")]
        assert sent == [warm_up["event_id"]], "nothing is sent before it is recorded as pending"
        assert notifier.healthy(), "the notifier keeps running through the outage"
    finally:
        world.start_postgres()  # waits until it is ready
    conn = psycopg2.connect(stack.admin_dsn)
    conn.autocommit = True
    try:
        wait_for(lambda: finished(conn, channel, 3), 60, "both events delivered after the outage")
        assert [r[2:4] for r in deliveries(conn, channel)] == [("delivered", 1)] * 3
    finally:
        conn.close()
    sent = [r.json["event_id"] for r in receiver.at("/outage")]
    assert sent == [warm_up["event_id"]] + [e["event_id"] for e in events]


def _figures_rows(admin, query_id: str) -> list[tuple]:
    with admin.cursor() as cur:
        cur.execute(
            "SELECT query_name, input_rows, kafka_lag, batch_duration_ms, details"
            " FROM pipeline_metrics WHERE query_id = %s ORDER BY batch_id",
            (query_id,),
        )
        return cur.fetchall()


def _delivered_in(rows: list[tuple]) -> dict[tuple[int, str], int]:
    counts: dict[tuple[int, str], int] = {}
    for *_, details in rows:
        for entry in details["deliveries"]:
            key = (entry["channel_id"], entry["outcome"])
            counts[key] = counts.get(key, 0) + entry["count"]
    return counts


def test_the_notifiers_figures_reach_pipeline_metrics_beside_the_jobs(
    stack, admin, receiver, notifier, publish
):
    """One row per interval, query_name 'notifier': deliveries per channel and outcome, their
    latency, the consumer lag; the notifier's role may insert them and nothing else there."""
    receiver.scripts["/refuses"] = [400]
    ok, _ = add_webhook(stack, receiver.url("/ok"), "--kind", TACHYCARDIA)  # no failing notice
    refuses, _ = add_webhook(stack, receiver.url("/refuses"))
    query_id = f"notifier:{notifier.env['HEARTBEAT_NOTIFIER_GROUP']}"
    notifier.start()
    opened, resolved = episode("N-FIGURES")
    publish(opened)
    publish(resolved)
    try:
        wait_for(lambda: finished(admin, ok, 2) and finished(admin, refuses, 2), 90,
                 "the four deliveries finished")  # fmt: skip
        wait_for(lambda: _delivered_in(_figures_rows(admin, query_id)).get((ok, "delivered")) == 2
                 and any(r[2] == 0 for r in _figures_rows(admin, query_id)[-1:]), 90,
                 "an interval row with the deliveries, then one with no lag")  # fmt: skip
        rows = _figures_rows(admin, query_id)
        assert {r[0] for r in rows} == {"notifier"}
        assert _delivered_in(rows) == {(ok, "delivered"): 2, (refuses, "dead"): 2}
        assert sum(r[1] for r in rows) == 2, "two events read"
        assert all(5_000 <= r[3] <= 60_000 for r in rows[:-1]), "intervals of about 10 s"
        latency = [
            r[4]["delivery_latency_ms"] for r in rows if r[4]["delivery_latency_ms"]["count"]
        ]
        assert sum(x["count"] for x in latency) == 2 and all(0 < x["p99"] < 60_000 for x in latency)
        assert rows[-1][4]["consumer_lag"], "lag per partition of the alerts topic"

        conn = psycopg2.connect(stack.notifier_dsn)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for statement in ("SELECT 1 FROM pipeline_metrics LIMIT 1",
                                  "UPDATE pipeline_metrics SET kafka_lag = 0",
                                  "DELETE FROM pipeline_metrics"):  # fmt: skip
                    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                        cur.execute(statement)
        finally:
            conn.close()
    finally:
        notifier.stop()
        with admin.cursor() as cur:
            cur.execute("DELETE FROM pipeline_metrics WHERE query_id = %s", (query_id,))
