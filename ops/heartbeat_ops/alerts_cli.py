"""`heartbeat-ops alerts set|show|reset`: a customer's own alert settings (customer_alert_settings).

The streaming job reads the table in every batch's transaction, so a change applies from the next
micro-batch without a restart. A setting left unset (NULL) is the global default
(HEARTBEAT_ALERT_* in README, "Configuration"). Statements run as the stack's superuser: the job's
role may only read the table.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime

import psycopg2
from psycopg2.extensions import connection

from heartbeat_contract.alerts import PLAUSIBLE_MAX_BPM, PLAUSIBLE_MIN_BPM, SEVERITY

from . import notify_cli
from .config import StackConfig, load

MAX_SUSTAIN_SECONDS = 86_400  # the table's own check


class SettingsError(ValueError):
    """Input the table would refuse, said in the operator's terms."""


@dataclass(frozen=True)
class Change:
    """What `alerts set` changes; None leaves a setting as it is."""

    low_bpm: int | None = None
    high_bpm: int | None = None
    sustain_seconds: float | None = None
    muted_until: datetime | None = None
    unmute: bool = False
    baseline_alerts: bool | None = None

    @property
    def empty(self) -> bool:
        return self == Change()


def bpm(text: str) -> int:
    """A bound in bpm: an integer within the plausible band the table accepts."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of bpm") from None
    if not PLAUSIBLE_MIN_BPM <= value <= PLAUSIBLE_MAX_BPM:
        raise argparse.ArgumentTypeError(
            f"{value} bpm is outside {PLAUSIBLE_MIN_BPM}..{PLAUSIBLE_MAX_BPM}"
        )
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_SUSTAIN_SECONDS:
        raise argparse.ArgumentTypeError(
            f"sustain must be more than 0 and at most {MAX_SUSTAIN_SECONDS} seconds"
        )
    return value


def moment(text: str) -> datetime:
    """An ISO-8601 date and time with an offset (Z or +01:00): a mute ends at one instant."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 time, e.g. 2026-12-01T18:00:00Z"
        ) from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no offset: add Z (UTC) or one like +01:00")
    return value


def on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError("expected on or off")
    return text == "on"


def check_bounds(low: int, high: int) -> None:
    if low >= high:
        raise SettingsError(f"low ({low} bpm) must be below high ({high} bpm)")


_CURRENT = """
SELECT low_bpm, high_bpm FROM customer_alert_settings WHERE customer_id = %s FOR UPDATE
"""

_UPSERT = """
INSERT INTO customer_alert_settings AS s (customer_id, low_bpm, high_bpm, sustain_seconds,
    muted_until, baseline_alerts)
VALUES (%(customer)s, %(low)s, %(high)s, %(sustain)s, %(muted_until)s,
        coalesce(%(baseline)s, true))
ON CONFLICT (customer_id) DO UPDATE SET
    low_bpm = coalesce(%(low)s, s.low_bpm),
    high_bpm = coalesce(%(high)s, s.high_bpm),
    sustain_seconds = coalesce(%(sustain)s, s.sustain_seconds),
    muted_until = CASE WHEN %(unmute)s THEN NULL ELSE coalesce(%(muted_until)s, s.muted_until) END,
    baseline_alerts = coalesce(%(baseline)s, s.baseline_alerts),
    updated_at = now(), updated_by = current_user
"""


def apply_change(conn: connection, customer: str, change: Change, config: StackConfig) -> None:
    """Upsert the customer's row; the bounds that result (own or default) must stay ordered."""
    if change.empty:
        raise SettingsError("nothing to set: give --low, --high, --sustain, --mute-until, "
                            "--unmute or --baseline-alerts")  # fmt: skip
    with conn, conn.cursor() as cur:
        cur.execute(_CURRENT, (customer,))
        stored = cur.fetchone() or (None, None)
        low = next(v for v in (change.low_bpm, stored[0], config.alert_low_bpm) if v is not None)
        high = next(v for v in (change.high_bpm, stored[1], config.alert_high_bpm) if v is not None)
        check_bounds(low, high)
        cur.execute(
            _UPSERT,
            {
                "customer": customer,
                "low": change.low_bpm,
                "high": change.high_bpm,
                "sustain": change.sustain_seconds,
                "muted_until": change.muted_until,
                "unmute": change.unmute,
                "baseline": change.baseline_alerts,
            },
        )


def reset(conn: connection, customer: str) -> bool:
    """Back to the global defaults; False when the customer had no settings."""
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM customer_alert_settings WHERE customer_id = %s", (customer,))
        return cur.rowcount > 0


@dataclass(frozen=True)
class Effective:
    """One setting as the job applies it, and where it comes from."""

    name: str
    value: str
    source: str  # "customer" or "default (VARIABLE)"


def effective(conn: connection, customer: str, config: StackConfig) -> list[Effective]:
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT low_bpm, high_bpm, sustain_seconds, muted_until, baseline_alerts,"
            " updated_at, updated_by, now() FROM customer_alert_settings WHERE customer_id = %s",
            (customer,),
        )
        row = cur.fetchone()
    low, high, sustain, muted_until, baseline, *_ = row or (None,) * 8

    def pick(name: str, own: object, default: object, variable: str) -> Effective:
        if own is None:
            return Effective(name, str(default), f"default ({variable})")
        return Effective(name, str(own), "customer")

    mute = "not muted"
    if muted_until is not None:
        state = "muted" if muted_until > row[7] else "expired"
        mute = f"{muted_until.isoformat()} ({state})"
    return [
        pick("low bpm", low, config.alert_low_bpm, "HEARTBEAT_ALERT_LOW_BPM"),
        pick("high bpm", high, config.alert_high_bpm, "HEARTBEAT_ALERT_HIGH_BPM"),
        pick(
            "sustain seconds",
            sustain,
            config.alert_sustain_seconds,
            "HEARTBEAT_ALERT_SUSTAIN_SECONDS",
        ),
        Effective("muted until", mute, "customer" if muted_until is not None else "default"),
        Effective(
            "baseline alerts",
            "on" if baseline in (None, True) else "off",
            "customer" if row is not None else "default",
        ),
    ]


def open_episodes(conn: connection, customer: str) -> list[tuple]:
    """The customer's open episodes, critical first, oldest first."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT kind, severity, started_at, last_reading_at, extreme_bpm, readings, revision,"
            " muted, alert_id FROM heart_rate_alerts"
            " WHERE customer_id = %s AND ended_at IS NULL"
            " ORDER BY severity = 'critical' DESC, started_at",
            (customer,),
        )
        return cur.fetchall()


def _connect(config: StackConfig) -> connection:
    return psycopg2.connect(config.admin_dsn)


def cmd_set(args: argparse.Namespace) -> int:
    config = load()
    change = Change(
        args.low, args.high, args.sustain, args.mute_until, args.unmute, args.baseline_alerts
    )
    conn = _connect(config)
    try:
        apply_change(conn, args.customer, change, config)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        conn.close()
    print(f"{args.customer}: saved; the job applies it from its next micro-batch")
    return _show(config, args.customer)


def cmd_show(args: argparse.Namespace) -> int:
    return _show(load(), args.customer)


def _show(config: StackConfig, customer: str) -> int:
    conn = _connect(config)
    try:
        settings = effective(conn, customer, config)
        episodes = open_episodes(conn, customer)
    finally:
        conn.close()
    print(f"customer {customer}")
    for setting in settings:
        print(f"  {setting.name:<16} {setting.value:<36} {setting.source}")
    if not episodes:
        print("open episodes: none")
    for kind, severity, started, last, extreme, readings, revision, muted, alert in episodes:
        assert severity == SEVERITY[kind]
        print(
            f"open {severity} {kind} since {started.isoformat()} (last reading "
            f"{last.isoformat()}), extreme {extreme} bpm, {readings} readings, revision "
            f"{revision}{', muted' if muted else ''}, alert_id {alert}"
        )
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    config = load()
    conn = _connect(config)
    try:
        removed = reset(conn, args.customer)
    finally:
        conn.close()
    print(f"{args.customer}: {'back to the defaults' if removed else 'had no own settings'}")
    return 0


def add_commands(sub) -> None:
    alerts = sub.add_parser("alerts", help="a customer's own alert settings").add_subparsers(
        dest="alerts_command", required=True
    )
    change = alerts.add_parser("set", help="set some of a customer's alert settings")
    change.add_argument("customer")
    change.add_argument("--low", type=bpm, help="bradycardia below this bpm")
    change.add_argument("--high", type=bpm, help="tachycardia above this bpm")
    change.add_argument("--sustain", type=seconds, help="seconds an abnormal run lasts to alert")
    mute = change.add_mutually_exclusive_group()
    mute.add_argument(
        "--mute-until",
        type=moment,
        metavar="ISO8601",
        help="record episodes opened before then without publishing them",
    )
    mute.add_argument("--unmute", action="store_true", help="publish again")
    change.add_argument("--baseline-alerts", type=on_off, metavar="on|off")
    change.set_defaults(func=cmd_set)
    show = alerts.add_parser("show", help="effective settings and where each comes from")
    show.add_argument("customer")
    show.set_defaults(func=cmd_show)
    back = alerts.add_parser("reset", help="back to the global defaults")
    back.add_argument("customer")
    back.set_defaults(func=cmd_reset)
    # The same command as `notify ack`: the notifier's messages name this one.
    notify_cli.add_ack_arguments(alerts.add_parser("ack", help="acknowledge an alert"))
