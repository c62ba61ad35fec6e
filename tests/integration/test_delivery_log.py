"""The delivery log's leases (heartbeat_notifier.ledger), on the real PostgreSQL as the notifier's
role: what a notifier may deliver now. Two notifiers never hold one row at once, an alert's
events are handed out in the order read, a notifier that died leaves its rows to a peer once the
lease runs out, and to its own restart at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from heartbeat_contract.alerts import OPEN, RESOLVED, TACHYCARDIA, alert_event, encode_event
from heartbeat_notifier import ledger
from heartbeat_notifier.events import Channel, parse_event

pytestmark = pytest.mark.integration
LEASE = 60.0


@pytest.fixture
def notifier_db(stack):
    conn = psycopg2.connect(stack.notifier_dsn)
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture
def channel(stack) -> Channel:
    """A channel of its own: the leases below see only this test's rows."""
    with psycopg2.connect(stack.admin_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO notify_channels (transport, target, format, secret, removed_at)"
            " VALUES ('webhook', 'http://127.0.0.1:9/', 'json', 'x', now()) RETURNING id"
        )
        channel_id = cur.fetchone()[0]
    conn.close()
    return Channel(channel_id, "webhook", "http://127.0.0.1:9/", "json", "warning", (), "x")


def _episode(customer: str) -> list[dict[str, object]]:
    """An episode's two events as the notifier reads them off the topic."""
    started = datetime.now(UTC) - timedelta(minutes=5)
    common = {"customer_id": customer, "kind": TACHYCARDIA, "started_at": started,
              "readings": 70, "extreme_bpm": 150}  # fmt: skip
    opened = alert_event(status=OPEN, last_reading_at=started, **common)
    resolved = alert_event(status=RESOLVED, ended_at=started + timedelta(seconds=90),
                           last_reading_at=started + timedelta(seconds=89), **common)  # fmt: skip
    events = [opened, resolved]
    return [parse_event(encode_event(event)[1]) for event in events]


def _owe(cur, channel: Channel, events: list[dict[str, object]]) -> None:
    published = datetime.now(UTC)
    ledger.record_owed(cur, [ledger.Owed(channel, event, published) for event in events])


def _lease(cur, channel: Channel, holder: str, held: list[str] = (), limit: int = 10):
    return ledger.lease_due(cur, channel.id, holder=holder, held=list(held), limit=limit,
                            lease_seconds=LEASE)  # fmt: skip


def test_an_alerts_events_are_handed_out_in_order_and_never_to_two_notifiers(notifier_db, channel):
    run = uuid.uuid4().hex[:6]
    first, second = _episode(f"LOG-{run}-A"), _episode(f"LOG-{run}-B")
    with notifier_db.cursor() as cur:
        _owe(cur, channel, [first[0], second[0], first[1], second[1]])
        _owe(cur, channel, [first[0]])  # read again: still one row
        a = _lease(cur, channel, "notifier-a", limit=1)
        b = _lease(cur, channel, "notifier-b")
        assert [d.event["event_id"] for d in a] == [first[0]["event_id"]], "the oldest first"
        assert [d.event["event_id"] for d in b] == [second[0]["event_id"]], (
            "B takes the other alert's open; neither resolve while its open is pending"
        )
        assert _lease(cur, channel, "notifier-c") == [], "every due row is leased"
        ledger.finish(cur, a[0].id, "delivered", 200)
        c = _lease(cur, channel, "notifier-c")
        assert [d.event for d in c] == [first[1]], "the resolve once its open is finished"
        assert c[0].event == first[1] and not c[0].alert_acknowledged


def test_a_lease_runs_out_for_a_peer_and_a_restart_takes_its_own_rows_at_once(notifier_db, channel):
    run = uuid.uuid4().hex[:6]
    [opened, _] = _episode(f"LOG-{run}-C")
    with notifier_db.cursor() as cur:
        _owe(cur, channel, [opened])
        [held] = _lease(cur, channel, "notifier-a")
        assert _lease(cur, channel, "notifier-a", held=[held.id]) == [], "under way here"
        assert _lease(cur, channel, "notifier-b") == [], "a live lease holds off a peer"
        [again] = _lease(cur, channel, "notifier-a")  # a restart of notifier-a: held = []
        assert again.id == held.id
        cur.execute("UPDATE notify_deliveries SET leased_until = now() - interval '1 second'"
                    " WHERE id = %s", (held.id,))  # fmt: skip
        [taken] = _lease(cur, channel, "notifier-b")
        assert taken.id == held.id, "a lease not renewed runs out"
        ledger.renew_leases(cur, "notifier-a", [held.id], LEASE)  # not notifier-a's any more
        assert _lease(cur, channel, "notifier-c") == [], "notifier-b's lease holds"
        ledger.release_leases(cur, "notifier-b")
        assert [d.id for d in _lease(cur, channel, "notifier-c")] == [held.id]
