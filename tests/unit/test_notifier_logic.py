"""The notifier's pure decisions: which offsets may be committed, what is retried and how long it
waits, which channels want an event, signatures, links."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import unquote

import pytest
from tenacity import RetryCallState, Retrying

from heartbeat_contract.alerts import (
    CRITICAL_HIGH,
    DELIVERY_FAILING,
    OPEN,
    RESOLVED,
    TACHYCARDIA,
    alert_event,
    delivery_failing_id,
    encode_event,
)  # fmt: skip
from heartbeat_notifier import failing_channels
from heartbeat_notifier.delivery import RetryAfterOrBackoff
from heartbeat_notifier.events import Channel, MalformedEvent, parse_event
from heartbeat_notifier.messages import dashboard_link, email_message, links_for, webhook_body
from heartbeat_notifier.metrics import percentile
from heartbeat_notifier.offsets import OffsetTracker
from heartbeat_notifier.service import STALL_SECONDS, stalled
from heartbeat_notifier.signing import signature, verify
from heartbeat_notifier.transports import Permanent, Retryable, classify_http, parse_retry_after
from heartbeat_notifier.watchdog import Watchdog, stuck_for
from tests.support.stream_job import wait_for

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _event(kind: str = TACHYCARDIA, status: str = OPEN) -> dict[str, object]:
    return alert_event(customer_id="C0042", kind=kind, status=status, started_at=NOW,
                       last_reading_at=NOW, extreme_bpm=150, readings=61)  # fmt: skip


def test_the_offset_moves_past_what_is_recorded_only_and_commits_only_moves():
    tracker = OffsetTracker()
    assert tracker.committable() == {}, "nothing recorded: nothing to commit"
    tracker.recorded({"p0": 11, "p1": 8})
    assert tracker.committable() == {"p0": 11, "p1": 8}
    tracker.mark_committed({"p0": 11, "p1": 8})
    assert tracker.committable() == {}
    tracker.recorded({"p0": 9})  # an older batch recorded late never moves it back
    tracker.recorded({"p0": 13})
    assert tracker.committable() == {"p0": 13}


def test_a_forgotten_partition_is_not_committed_and_starts_again():
    tracker = OffsetTracker()
    tracker.recorded({"p0": 5, "p1": 8})
    tracker.forget(["p0"])  # revoked or lost: its next reader starts from the commit
    assert tracker.committable() == {"p1": 8} and tracker.partitions() == {"p1"}
    tracker.mark_committed({"p1": 8})
    tracker.forget(["p1"])
    tracker.recorded({"p1": 8})  # handed back and read again from the commit
    assert tracker.committable() == {"p1": 8}


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, None), (204, None), (500, Retryable), (503, Retryable), (429, Retryable),
     (400, Permanent), (404, Permanent), (410, Permanent), (301, Permanent)],
)  # fmt: skip
def test_http_status_classification(status, expected):
    failure = classify_http(status, None)
    assert (failure is None) if expected is None else isinstance(failure, expected)


def test_retry_after_in_seconds_or_as_a_date():
    assert parse_retry_after("7") == 7.0
    later = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=NOW.timestamp()) == pytest.approx(30, abs=1)
    assert parse_retry_after("soon") is None
    assert classify_http(429, "3").retry_after == 3.0


def _state(attempt: int, error: Exception) -> RetryCallState:
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(error), error, None))
    return state


def test_back_off_grows_with_jitter_and_honours_retry_after_up_to_the_cap():
    wait = RetryAfterOrBackoff(initial=1.0, maximum=60.0)
    first = [wait(_state(1, Retryable("HTTP 500", 500))) for _ in range(50)]
    fourth = [wait(_state(4, Retryable("HTTP 500", 500))) for _ in range(50)]
    assert all(1.0 <= w <= 2.0 for w in first) and len(set(first)) > 1  # jittered
    assert all(8.0 <= w <= 9.0 for w in fourth)
    assert wait(_state(9, Retryable("HTTP 500", 500))) <= 60.0
    assert wait(_state(1, Retryable("HTTP 429", 429, retry_after=12))) == 12
    assert wait(_state(1, Retryable("HTTP 429", 429, retry_after=3600))) == 60.0


def test_channel_filters_by_severity_and_kind():
    anything = Channel(1, "webhook", "http://x", "json", "warning", (), "s")
    critical = Channel(2, "webhook", "http://x", "json", "critical", (), "s")
    tachy_only = Channel(3, "email", "a@b", "email", "warning", (TACHYCARDIA,), None)
    warning, severe = _event(TACHYCARDIA), _event(CRITICAL_HIGH)
    assert anything.wants(warning) and anything.wants(severe)
    assert not critical.wants(warning) and critical.wants(severe)
    assert tachy_only.wants(warning) and not tachy_only.wants(severe)


def test_signature_verifies_the_exact_bytes_only():
    body = b'{"a":1}'
    header = signature("secret", body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify("secret", body, header)
    assert not verify("secret", b'{"a": 1}', header)
    assert not verify("other", body, header)


def test_parse_event_refuses_what_is_not_a_lifecycle_event():
    from heartbeat_contract.alerts import encode_event

    assert parse_event(encode_event(_event())[1])["severity"] == "warning"
    for bad in (
        b"nope",
        b"[]",
        b'{"alert_id": "x"}',
        json.dumps({**_event(), "kind": "x"}).encode(),
    ):
        with pytest.raises(MalformedEvent):
            parse_event(bad)


def test_notifications_carry_the_dashboard_link_and_how_to_acknowledge():
    event = _event()
    links = links_for(
        event, dashboard_url="http://dash:8088/", ack_base_url="http://127.0.0.1:8095"
    )
    assert links["ack_url"] == f"http://127.0.0.1:8095/alerts/{event['alert_id']}/ack"
    assert "/superset/dashboard/customer-detail/?native_filters=" in links["dashboard"]
    assert "val:!('C0042')" in unquote(links["dashboard"])
    body = json.loads(webhook_body(event, fmt="json", delivery_id="d1", sent_at=5, links=links))
    assert body["event_id"] == event["event_id"] and body["sent_at"] == 5
    assert body["ack_command"].startswith("heartbeat-ops alerts ack " + str(event["alert_id"]))
    slack = json.loads(webhook_body(event, fmt="slack", delivery_id="d1", sent_at=5, links=links))
    assert set(slack) == {"text"} and "C0042" in slack["text"]
    mail = email_message(_event(status=RESOLVED), sender="a@b", recipient="c@d", delivery_id="d1",
                         links=links)  # fmt: skip
    assert mail["Subject"] == "[heartbeat] WARNING tachycardia resolved: customer C0042"
    html = mail.get_body(("html",)).get_content()
    assert links["dashboard"].replace("&", "&amp;") in html


def _failure(channel_id: int = 7, ended_at: datetime | None = None) -> failing_channels.Failure:
    label = f"{channel_id} (webhook to https://h)"
    last_dead = NOW + timedelta(minutes=3)
    identity = delivery_failing_id(channel_id, NOW)  # as failing_channels.failed keeps it
    return failing_channels.Failure(identity, channel_id, label, NOW, last_dead, 4, "HTTP 410",
                                    ended_at)  # fmt: skip


def test_a_failing_channels_notice_is_a_critical_event_of_that_channel_alone():
    opened, resolved = _failure().event(), _failure(ended_at=NOW + timedelta(hours=1)).event()
    assert parse_event(encode_event(opened)[1])["kind"] == DELIVERY_FAILING, "the notifier reads it"
    assert (opened["status"], resolved["status"]) == (OPEN, RESOLVED)
    assert opened["severity"] == "critical" and opened["alert_id"] == resolved["alert_id"]
    assert opened["event_id"] != resolved["event_id"]
    assert (opened["channel_id"], opened["readings"], opened["last_error"]) == (7, 4, "HTTP 410")
    assert _failure(channel_id=8).event()["alert_id"] != opened["alert_id"], (
        "two channels failing at one moment are two alerts"
    )


def test_a_failing_channel_is_named_without_its_secrets():
    slack = Channel(3, "webhook", "https://hooks.slack.com/services/T0/B0/s3cr3t?x=1", "slack",
                    "warning", (), "k")  # fmt: skip
    assert failing_channels.label(slack) == "3 (webhook to https://hooks.slack.com)"
    mail = Channel(4, "email", "oncall@example.org", "email", "warning", (), None)
    assert failing_channels.label(mail) == "4 (email to oncall@example.org)"


def test_a_failing_channels_notice_is_owed_to_the_other_channels_that_take_it():
    def channel(channel_id: int, severity: str = "warning", kinds: tuple[str, ...] = ()):
        return Channel(channel_id, "webhook", "https://h", "json", severity, kinds, "k")

    channels = [channel(7), channel(8, "critical"), channel(9, kinds=(TACHYCARDIA,)),
                channel(10, kinds=(DELIVERY_FAILING,))]  # fmt: skip
    owed = failing_channels.owed_for(_failure(channel_id=7), channels)
    assert [o.channel.id for o in owed] == [8, 10], "not itself, not a channel of other kinds"
    assert failing_channels.owed_for(_failure(channel_id=7), channels[:1]) == []


def test_a_failing_channels_notice_names_the_channel_and_links_the_dead_deliveries():
    event = _failure().event()
    links = links_for(event, dashboard_url="http://dash:8088", ack_base_url="http://n:8095")
    assert links["dashboard"] == "http://dash:8088/superset/dashboard/pipeline-operations/"
    mail = email_message(event, sender="a@b", recipient="c@d", delivery_id="d1", links=links)
    assert mail["Subject"] == (
        "[heartbeat] CRITICAL delivery_failing open: channel 7 (webhook to https://h)"
    )
    text = mail.get_body(("plain",)).get_content()
    assert "dead deliveries: 4" in text and "last error: HTTP 410" in text
    assert "Pipeline Operations (dead deliveries): http://dash:8088/" in text
    slack = json.loads(webhook_body(event, fmt="slack", delivery_id="d1", sent_at=5, links=links))
    assert "channel 7" in slack["text"] and "customer" not in slack["text"]


def test_a_customer_id_with_rison_specials_is_escaped():
    assert "val:!('a!'b!!')" in unquote(dashboard_link("http://d", "a'b!"))
    assert dashboard_link("http://d", "*").endswith("/heart-rate-monitoring/")


def test_percentile_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile(list(map(float, range(1, 101))), 0.99) == 99.0


def test_cli_refuses_a_bad_target_before_touching_the_database(capsys):
    from heartbeat_ops.cli import main

    assert main(["notify", "add-webhook", "ftp://example.org/x"]) == 2
    assert main(["notify", "add-email", "a@b, c@d"]) == 2
    assert "not an http(s) URL" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["notify", "add-webhook", "https://x", "--kind", "not-a-kind"])
    with pytest.raises(SystemExit):
        main(["notify", "ack", "0" * 32])  # --by is required


def test_listen_address_and_ack_url(monkeypatch):
    from heartbeat_notifier.config import NotifierConfig

    monkeypatch.setenv("HEARTBEAT_NOTIFIER_LISTEN", "127.0.0.1:9999")
    config = NotifierConfig()
    assert config.listen_address == ("127.0.0.1", 9999)
    assert config.ack_base_url == "http://127.0.0.1:9999"
    assert f"user={config.notifier_user} " in config.dsn


@pytest.mark.parametrize(
    ("waiting", "paused", "idle", "expected"),
    [
        (1, False, STALL_SECONDS, True),  # an event waits, nothing read for the limit
        (1, False, STALL_SECONDS - 1, False),  # not yet
        (0, False, STALL_SECONDS * 10, False),  # nothing waits: a quiet topic
        (5, True, STALL_SECONDS * 10, False),  # paused on purpose (the database is away)
    ],
)
def test_a_consumer_is_stalled_only_when_events_wait_and_nothing_else_explains_it(
    waiting, paused, idle, expected
) -> None:
    assert stalled(waiting, paused, idle) is expected


def test_stuck_only_from_the_limit_on():
    assert stuck_for(last_beat=100.0, now=219.9, limit=120) is None
    assert stuck_for(last_beat=100.0, now=220.0, limit=120) == 120.0


def test_the_watchdog_fires_once_on_a_stuck_loop_and_never_on_a_beating_or_stopped_one():
    calls: list[float] = []
    beating = {"at": time.monotonic()}
    keep_beating = threading.Event()
    keep_beating.set()

    def beat() -> float:
        if keep_beating.is_set():
            beating["at"] = time.monotonic()
        return beating["at"]

    guard = Watchdog(beat, limit=0.4, on_stuck=calls.append).start()
    stopped = Watchdog(lambda: 0.0, limit=0.4, on_stuck=calls.append)
    stopped.stop()
    stopped.start()
    time.sleep(1.2)  # three limits of a beating loop (a negative: there is nothing to poll)
    assert calls == []
    keep_beating.clear()
    wait_for(lambda: calls, 5, "the watchdog to fire", poll=0.05)
    assert len(calls) == 1 and calls[0] >= 0.4
    guard._thread.join(5)
    assert not guard._thread.is_alive(), "it fires once, then ends"
