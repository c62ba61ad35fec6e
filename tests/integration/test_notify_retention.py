"""The delivery log's retention as the notifier runs it (heartbeat_notifier.retention), as the
notifier's role: finished deliveries (delivered, dead, suppressed) older than the horizon go,
pending ones and younger ones stay, and the database refuses the role any other delete."""

from __future__ import annotations

import uuid

import psycopg2
import psycopg2.errors
import pytest

from heartbeat_notifier.database import Database
from heartbeat_notifier.retention import RetentionClock, prune
from tests.support.notifier import insert_webhook_channel

pytestmark = pytest.mark.integration

DAYS = 30  # HEARTBEAT_RAW_RETENTION_DAYS' default

# (outcome, age in days): what each row is, and whether retention removes it.
ROWS = {
    "delivered-old": ("delivered", 31, True),
    "dead-old": ("dead", 45, True),
    "suppressed-old": ("suppressed", 31, True),
    "pending-old": ("pending", 40, False),  # work not done: never deleted
    "delivered-edge": ("delivered", 29.9, False),  # inside the horizon
    "dead-young": ("dead", 0.5, False),  # younger than a day: the guard refuses its delete
}


@pytest.fixture
def deliveries(stack):
    """One channel and a delivery per ROWS entry (event_id = its name), written as superuser."""
    run = uuid.uuid4().hex[:8]
    admin = psycopg2.connect(stack.admin_dsn)
    with admin, admin.cursor() as cur:
        channel = insert_webhook_channel(cur, f"http://127.0.0.1:9/{run}")
        for name, (outcome, age_days, _) in ROWS.items():
            cur.execute(
                "INSERT INTO notify_deliveries (channel_id, event_id, alert_id, alert_status,"
                " kind, severity, customer_id, outcome, created_at)"
                " VALUES (%s, %s, %s, 'open', 'tachycardia', 'warning', %s, %s,"
                " now() - make_interval(secs => %s))",
                (channel, f"{run}-{name}", f"{run}-alert", f"T18R-{run}", outcome,
                 age_days * 86400),
            )  # fmt: skip
    yield run, channel
    with admin, admin.cursor() as cur:
        cur.execute("DELETE FROM notify_deliveries WHERE channel_id = %s", (channel,))
        cur.execute("DELETE FROM notify_channels WHERE id = %s", (channel,))
    admin.close()


def _left(stack, channel: int, run: str) -> set[str]:
    with psycopg2.connect(stack.admin_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT event_id FROM notify_deliveries WHERE channel_id = %s", (channel,))
        names = {event_id.removeprefix(f"{run}-") for (event_id,) in cur.fetchall()}
    conn.close()
    return names


def test_finished_deliveries_past_the_horizon_are_pruned(stack, deliveries):
    run, channel = deliveries
    db = Database(stack.notifier_dsn, size=2)
    try:
        clock = RetentionClock(db, DAYS, interval=3600)
        removed = clock.tick()  # the first tick prunes at once ...
        assert clock.tick() == 0  # ... the next waits for the interval
    finally:
        db.close()
    gone = {name for name, (_, _, pruned) in ROWS.items() if pruned}
    assert removed >= len(gone)  # other tests' old finished rows may go too
    assert _left(stack, channel, run) == set(ROWS) - gone


def test_the_notifier_role_cannot_delete_pending_or_young_deliveries(stack, deliveries):
    run, channel = deliveries
    conn = psycopg2.connect(stack.notifier_dsn)
    try:
        for name in ("pending-old", "dead-young"):
            refused = pytest.raises(psycopg2.errors.InsufficientPrivilege, match="retention")
            with refused, conn, conn.cursor() as cur:
                cur.execute("DELETE FROM notify_deliveries WHERE event_id = %s", (f"{run}-{name}",))
        # A chunk size of 1 still reaches every row past the horizon.
        db = Database(stack.notifier_dsn, size=1)
        try:
            assert prune(db, DAYS, chunk=1) >= 3
        finally:
            db.close()
    finally:
        conn.close()
    assert {"pending-old", "dead-young"} <= _left(stack, channel, run)
