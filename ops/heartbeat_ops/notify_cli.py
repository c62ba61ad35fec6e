"""`heartbeat-ops notify ...`: the notifier's channels (add, list, remove, test) and
acknowledging an alert. Channels live in PostgreSQL; the running notifier picks changes up within
a second, without a restart. A webhook's signing secret is printed once, when it is added."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

import psycopg2

from heartbeat_contract.alerts import ALERT_KINDS, OPEN, SEVERITIES, TACHYCARDIA, alert_event
from heartbeat_notifier import failing_channels, ledger
from heartbeat_notifier.config import load as load_notifier_config
from heartbeat_notifier.delivery import Dispatcher
from heartbeat_notifier.metrics import Metrics
from heartbeat_notifier.signing import new_secret
from heartbeat_notifier.transports import DeliveryFailed

from .config import load

TEST_CUSTOMER = "TEST"


def _connect() -> psycopg2.extensions.connection:
    """As the superuser, like the other operator commands: channels hold signing secrets that
    no runtime role may write."""
    return psycopg2.connect(load().admin_dsn)


def _add(transport: str, target: str, fmt: str, severity: str, kinds: list[str] | None,
         secret: str | None) -> int:  # fmt: skip
    conn = _connect()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO notify_channels (transport, target, format, min_severity, kinds,"
                " secret) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (transport, target, fmt, severity, sorted(set(kinds or [])), secret),
            )
            return cur.fetchone()[0]
    finally:
        conn.close()


def cmd_add_webhook(args: argparse.Namespace) -> int:
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        print(f"error: {args.url!r} is not an http(s) URL", file=sys.stderr)
        return 2
    secret = new_secret()
    channel = _add("webhook", args.url, args.format, args.severity, args.kind, secret)
    if args.json:
        print(json.dumps({"id": channel, "secret": secret}))
    else:
        print(f"webhook channel {channel} -> {args.url}")
        print(f"signing secret (shown once; the receiver verifies X-Heartbeat-Signature): {secret}")
    return 0


def cmd_add_email(args: argparse.Namespace) -> int:
    if "@" not in args.address or any(c in args.address for c in "\r\n ,;"):
        print(f"error: {args.address!r} is not one e-mail address", file=sys.stderr)
        return 2
    channel = _add("email", args.address, "email", args.severity, args.kind, None)
    print(
        json.dumps({"id": channel}) if args.json else f"e-mail channel {channel} -> {args.address}"
    )
    return 0


def _channels(cur, channel_id: int | None = None) -> list[dict[str, object]]:
    cur.execute(
        "SELECT c.id, c.transport, c.target, c.format, c.min_severity, c.kinds, c.created_at,"
        " count(d.id) FILTER (WHERE d.outcome = 'delivered'),"
        " count(d.id) FILTER (WHERE d.outcome = 'dead'),"
        " count(d.id) FILTER (WHERE d.outcome = 'pending')"
        " FROM notify_channels c LEFT JOIN notify_deliveries d ON d.channel_id = c.id"
        " WHERE c.removed_at IS NULL AND (%s::bigint IS NULL OR c.id = %s::bigint)"
        " GROUP BY c.id ORDER BY c.id",
        (channel_id, channel_id),
    )
    keys = ("id", "transport", "target", "format", "severity", "kinds", "created_at",
            "delivered", "dead", "pending")  # fmt: skip
    return [dict(zip(keys, row, strict=True)) for row in cur.fetchall()]


def cmd_list(args: argparse.Namespace) -> int:
    conn = _connect()
    try:
        with conn, conn.cursor() as cur:
            rows = _channels(cur)
    finally:
        conn.close()
    if args.json:
        print(json.dumps(rows, default=str))
        return 0
    print(f"{'id':>4}  {'transport':<9} {'format':<6} {'severity':<9} {'kinds':<24} "
          f"{'delivered':>9} {'dead':>5} {'pending':>7}  target")  # fmt: skip
    for r in rows:
        kinds = ",".join(r["kinds"]) or "all"
        counts = f"{r['delivered']:>9} {r['dead']:>5} {r['pending']:>7}"
        print(f"{r['id']:>4}  {r['transport']:<9} {r['format']:<6} {r['severity']:<9} "
              f"{kinds:<24} {counts}  {r['target']}")  # fmt: skip
    return 0


# A removed channel is never delivered to again: what it still owed ends dead, so it shows among
# the dead deliveries (what that channel missed) instead of waiting in the log for good.
_END_OWED = (
    "UPDATE notify_deliveries SET outcome = 'dead', dead_at = now(),"
    " last_error = 'channel removed before delivery'"
    " WHERE channel_id = %s AND outcome = 'pending'"
)


def cmd_remove(args: argparse.Namespace) -> int:
    conn = _connect()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE notify_channels SET removed_at = now() WHERE id = %s"
                " AND removed_at IS NULL RETURNING target",
                (args.id,),
            )
            row = cur.fetchone()
            if row is not None:
                cur.execute(_END_OWED, (args.id,))
                ended = cur.rowcount
                # Failing no more: the channels told it was failing are told it is resolved.
                resolved = failing_channels.resolve_removed(cur, args.id)
                failing_channels.announce(cur, resolved, ledger.load_channels(cur))
    finally:
        conn.close()
    if row is None:
        print(f"error: no channel {args.id}", file=sys.stderr)
        return 1
    print(f"removed channel {args.id} ({row[0]}); its delivery log is kept; {ended} pending"
          " deliveries ended dead")  # fmt: skip
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    """One attempt of a made-up event, straight from here (no Kafka, no delivery log)."""
    conn = _connect()
    try:
        with conn, conn.cursor() as cur:
            channel = next((c for c in ledger.load_channels(cur) if c.id == args.id), None)
    finally:
        conn.close()
    if channel is None:
        print(f"error: no channel {args.id}", file=sys.stderr)
        return 1
    now = datetime.now(UTC)
    kind = channel.kinds[0] if channel.kinds else TACHYCARDIA
    event = {
        **alert_event(customer_id=TEST_CUSTOMER, kind=kind, status=OPEN, started_at=now,
                      last_reading_at=now),
        "test": True,
    }  # fmt: skip
    dispatcher = Dispatcher(load_notifier_config(), None, Metrics(), holder="test")  # type: ignore[arg-type]
    send = dispatcher.sender(channel, event, f"test-{uuid.uuid4()}")
    try:
        status = send()
    except DeliveryFailed as error:
        print(f"channel {channel.id} ({channel.target}): FAILED: {error}", file=sys.stderr)
        return 1
    print(f"channel {channel.id} ({channel.target}): test event delivered ({status})")
    return 0


def cmd_ack(args: argparse.Namespace) -> int:
    conn = _connect()
    try:
        with conn, conn.cursor() as cur:
            ack = ledger.acknowledge(cur, args.alert_id, args.by, args.note)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        conn.close()
    when = f"{ack.acked_at:%Y-%m-%d %H:%M:%S %Z}"
    already = "" if ack.new else "was already "
    print(f"alert {ack.alert_id} {already}acknowledged by {ack.acked_by} at {when}")
    return 0


def add_ack_arguments(parser: argparse.ArgumentParser) -> None:
    """ALERT_ID --by NAME [--note TEXT]: shared with `heartbeat-ops alerts ack` (wired at merge)."""
    parser.add_argument("alert_id", help="the alert's id (in every notification)")
    parser.add_argument("--by", required=True, help="who has seen it")
    parser.add_argument("--note", help="what is being done about it")
    parser.set_defaults(func=cmd_ack)


def _filters(parser: argparse.ArgumentParser) -> None:
    least = "the least severity sent (default: warning, i.e. every event)"
    parser.add_argument("--severity", choices=SEVERITIES, default=SEVERITIES[0], help=least)
    parser.add_argument("--kind", action="append", choices=ALERT_KINDS,
                        help="only these kinds (repeat; default: every kind)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print only a JSON object")


def add_commands(sub) -> None:
    notify = sub.add_parser("notify", help="notification channels and acknowledgements")
    commands = notify.add_subparsers(dest="notify_command", required=True)
    webhook = commands.add_parser("add-webhook", help="POST signed alert events to a URL")
    webhook.add_argument("url")
    webhook.add_argument("--format", choices=("json", "slack"), default="json")
    _filters(webhook)
    webhook.set_defaults(func=cmd_add_webhook)
    email = commands.add_parser("add-email", help="e-mail alert events (HEARTBEAT_SMTP_*)")
    email.add_argument("address")
    _filters(email)
    email.set_defaults(func=cmd_add_email)
    listing = commands.add_parser("list", help="channels with their delivered/dead/pending counts")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    remove = commands.add_parser(
        "remove", help="stop sending to a channel (its log is kept; what it still owes ends dead)"
    )
    remove.add_argument("id", type=int)
    remove.set_defaults(func=cmd_remove)
    test = commands.add_parser("test", help="send a made-up event to a channel once")
    test.add_argument("id", type=int)
    test.set_defaults(func=cmd_test)
    add_ack_arguments(commands.add_parser("ack", help="acknowledge an alert: no more re-notifying"))
