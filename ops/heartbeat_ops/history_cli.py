"""`heartbeat-ops load-history` / `delete-history`: the history loader from the command line."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import psycopg2

from . import history
from .config import load


def _connect() -> psycopg2.extensions.connection:
    """As the superuser: deleting young rows is refused to the job's role (retention guard)."""
    config = load()
    return psycopg2.connect(config.admin_dsn)


def cmd_load_history(args: argparse.Namespace) -> int:
    options: dict[str, object] = {
        "seed": args.seed,
        "tag": args.tag,
        "customer_prefix": args.prefix,
    }
    if args.baseline_scenario:
        options["end"] = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        options["scripts"] = history.baseline_scenario(options["end"], args.days, seed=args.seed)
    if args.readings:
        plan = history.HistoryPlan.for_readings(args.readings, args.customers, args.days, **options)
    else:
        plan = history.HistoryPlan(
            customers=args.customers, days=args.days, interval_seconds=args.interval, **options
        )
    print(
        f"{plan.customers:,} customers x {plan.steps:,} readings each (every "
        f"{plan.interval_seconds:.0f} s) from {plan.start:%Y-%m-%d %H:%M} to {plan.end:%H:%M} UTC,"
        f" tag {plan.tag}",
        flush=True,
    )
    if args.baseline_scenario:
        width = max(4, len(str(plan.customers)))
        named = {history.SHIFTED: "resting rate +8 bpm for the last two days",
                 history.VARYING: "day-to-day variation of +-3 bpm",
                 history.WORKOUT: "one hard 3-hour workout"}  # fmt: skip
        for slot, what in named.items():
            print(f"  {plan.customer_prefix}{slot + 1:0{width}d}: {what}", flush=True)
    conn = _connect()
    try:
        if args.replace:
            print(f"deleted {history.delete(conn, plan.tag):,} earlier readings", flush=True)
        summary = history.load(conn, plan)
        with conn, conn.cursor() as cur:
            for table in ("heart_rate_readings", "heart_rate_minute", "heart_rate_alerts",
                          "rejected_readings"):  # fmt: skip
                cur.execute(f"ANALYZE {table}")
    finally:
        conn.close()
    print(
        f"{summary.readings:,} readings, {summary.rejected:,} quarantined, {summary.minutes:,} "
        f"minute rollups, {summary.episodes:,} episodes in {summary.seconds:.0f} s "
        f"({(summary.readings + summary.rejected) / summary.seconds:,.0f} messages/s)"
    )
    return 0


def cmd_delete_history(args: argparse.Namespace) -> int:
    conn = _connect()
    try:
        print(f"deleted {history.delete(conn, args.tag):,} readings tagged {args.tag}")
    finally:
        conn.close()
    return 0


def add_commands(sub) -> None:
    loader = sub.add_parser(
        "load-history", help="COPY a realistic history (readings, rollups, episodes) to PostgreSQL"
    )
    loader.add_argument("--customers", type=int, default=1000)
    loader.add_argument("--days", type=float, default=7.0)
    loader.add_argument("--interval", type=float, default=60.0, help="seconds between readings")
    loader.add_argument("--readings", type=int, help="about this many in all (sets --interval)")
    loader.add_argument("--seed", type=int, default=0)
    loader.add_argument("--prefix", default="H", help="customer id prefix (H0001, ...)")
    loader.add_argument("--tag", default=history.DEFAULT_TAG, help="kafka_topic / sink_id of rows")
    loader.add_argument("--replace", action="store_true", help="delete the tag's rows first")
    loader.add_argument(
        "--baseline-scenario",
        action="store_true",
        help="script the first three customers for the personal baseline: a resting rate +8 bpm"
        " for the last two whole UTC days, day-to-day variation of +-3 bpm, one hard workout"
        " (needs --days 10 or more; then the job's baseline pass, or"
        " `python -m heartbeat_stream.runtime.baseline`, opens one elevated_resting)",
    )
    loader.set_defaults(func=cmd_load_history)
    remove = sub.add_parser("delete-history", help="delete the rows load-history wrote")
    remove.add_argument("--tag", default=history.DEFAULT_TAG)
    remove.set_defaults(func=cmd_delete_history)
