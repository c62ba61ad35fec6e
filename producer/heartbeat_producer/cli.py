"""`heartbeat-producer` / `python -m heartbeat_producer`: the simulator as a command.

With no arguments (as supervisord runs it) it feeds KAFKA_TOPIC on KAFKA_BOOTSTRAP_SERVERS with
100 customers at one reading each per second until SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from kafka.errors import KafkaError

from heartbeat_contract import (
    NAIVE_TIMESTAMP_ZONE_ENV,
    REJECT_NAIVE_TIMESTAMPS,
)
from heartbeat_contract.settings import Settings

from . import config as defaults
from .config import PublisherSettings, RunSettings, SimulationConfig
from .publisher import available_compression
from .workers import AUTO_WORKERS_FROM_RATE, auto_workers, produce


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _critical_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 60.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 60] per hour, got {text}")
    return value


def _aware_datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 date-time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("needs a UTC offset or Z, e.g. 2026-11-29T20:00:00Z")
    return value


def build_parser() -> argparse.ArgumentParser:
    env = Settings()
    parser = argparse.ArgumentParser(
        prog="heartbeat-producer",
        description="Simulate customers' heart-rate readings and publish them to Kafka.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sim = parser.add_argument_group("simulation")
    # The supervised producer runs without flags; these variables tune it (same in compose).
    # argparse applies `type` to string defaults, so a bad value fails as clearly as a bad flag.
    sim.add_argument(
        "--customers",
        type=_positive_int,
        default=env.producer_customers or defaults.DEFAULT_CUSTOMERS,
        help="(env PRODUCER_CUSTOMERS)",
    )
    sim.add_argument(
        "--rate",
        type=_positive_float,
        default=env.producer_rate,
        help="readings per second across all customers (env PRODUCER_RATE; default: one per "
        "customer per second)",
    )
    limit = sim.add_mutually_exclusive_group()
    limit.add_argument(
        "--duration",
        type=_positive_float,
        metavar="SECONDS",
        help="stop after this many seconds (default: run until SIGINT/SIGTERM)",
    )
    limit.add_argument("--count", type=_positive_int, metavar="N", help="stop after N readings")
    sim.add_argument(
        "--customer-prefix",
        default="C",
        metavar="TEXT",
        help="customer ids are TEXT0001, TEXT0002, ... (keeps runs side by side apart)",
    )
    sim.add_argument("--seed", type=int, help="makes the run reproducible (default: random)")
    sim.add_argument(
        "--start",
        type=_aware_datetime,
        metavar="ISO-8601",
        help="event time of the first reading (default: now)",
    )
    sim.add_argument(
        "--invalid-rate",
        type=_fraction,
        default=defaults.DEFAULT_INVALID_RATE,
        help="share of readings out of range (<40 or >180 bpm)",
    )
    sim.add_argument(
        "--abnormal-rate",
        type=_fraction,
        default=defaults.DEFAULT_ABNORMAL_RATE,
        help="share of time customers spend in abnormal episodes (>120 or <50 bpm)",
    )
    sim.add_argument(
        "--malformed-rate",
        type=_fraction,
        default=env.producer_malformed_rate or defaults.DEFAULT_MALFORMED_RATE,
        help="share of messages that are broken (bad JSON, missing field, ...) "
        "(env PRODUCER_MALFORMED_RATE)",
    )
    sim.add_argument(
        "--critical-rate",
        type=_critical_rate,
        default=env.producer_critical_rate or defaults.DEFAULT_CRITICAL_RATE,
        metavar="PER_HOUR",
        help="persistent critical episodes (30-38 or 185-220 bpm for 20-60 s, quarantined as "
        "out of range and alerted on as critical_low/critical_high) per customer per hour; "
        "0 turns them off (env PRODUCER_CRITICAL_RATE)",
    )

    sim.add_argument(
        "--format",
        choices=defaults.MESSAGE_FORMATS,
        default=env.producer_format or defaults.CONTRACT_FORMAT,
        help="'legacy' sends the original system's messages: integer customer ids 1..N and "
        f"timestamps without an offset, in the zone {NAIVE_TIMESTAMP_ZONE_ENV} names "
        "(env PRODUCER_FORMAT)",
    )

    kafka = parser.add_argument_group("kafka")
    kafka.add_argument(
        "--bootstrap-servers",
        default=env.kafka_bootstrap_servers,
        help="host:port[,host:port] (env KAFKA_BOOTSTRAP_SERVERS)",
    )
    kafka.add_argument("--topic", default=env.kafka_topic, help="(env KAFKA_TOPIC)")
    publishing = PublisherSettings()
    kafka.add_argument("--linger-ms", type=_non_negative_int, default=publishing.linger_ms)
    kafka.add_argument(
        "--batch-size", type=_positive_int, default=publishing.batch_size, metavar="BYTES"
    )
    kafka.add_argument(
        "--compression", choices=available_compression(), default=publishing.compression
    )
    kafka.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="producer processes, each with every N-th customer and its own idempotent "
        f"producer (default: 1 below {AUTO_WORKERS_FROM_RATE:,.0f} readings/s, else one per "
        "CPU core, at most 4)",
    )

    report = parser.add_argument_group("reporting")
    running = RunSettings(rate=1.0)
    report.add_argument(
        "--ledger",
        type=Path,
        metavar="PATH",
        help="write counts per customer and per expected outcome here (JSON)",
    )
    report.add_argument(
        "--progress-interval",
        type=_positive_float,
        default=running.progress_interval,
        metavar="SECONDS",
        help="how often to log a progress line",
    )
    report.add_argument(
        "--flush-timeout",
        type=_positive_float,
        default=running.flush_timeout,
        metavar="SECONDS",
        help="how long to wait for buffered readings when stopping",
    )
    report.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    zone = Settings().naive_timestamp_zone
    if args.format == defaults.LEGACY_FORMAT and zone == REJECT_NAIVE_TIMESTAMPS:
        parser.error(
            f"--format legacy sends timestamps without an offset, which "
            f"{NAIVE_TIMESTAMP_ZONE_ENV}={zone} quarantines: set it to the devices' time zone"
        )
    try:
        simulation = SimulationConfig(
            customers=args.customers,
            seed=seed,
            invalid_rate=args.invalid_rate,
            abnormal_rate=args.abnormal_rate,
            malformed_rate=args.malformed_rate,
            critical_rate=args.critical_rate,
            customer_prefix=args.customer_prefix,
            message_format=args.format,
            legacy_zone=zone,
        )
    except ValueError as error:
        parser.error(str(error))
    publishing = PublisherSettings(
        bootstrap_servers=args.bootstrap_servers,
        topic=args.topic,
        linger_ms=args.linger_ms,
        batch_size=args.batch_size,
        compression=args.compression,
    )
    rate = args.rate if args.rate is not None else float(args.customers)
    settings = RunSettings(
        rate=rate,
        duration=args.duration,
        count=args.count,
        ledger_path=args.ledger,
        progress_interval=args.progress_interval,
        flush_timeout=args.flush_timeout,
        workers=args.workers or auto_workers(rate, args.customers),
    )

    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.log_level != "DEBUG":  # kafka-python is chatty at INFO (connections, metadata)
        logging.getLogger("kafka").setLevel(logging.WARNING)

    try:
        report = produce(simulation, publishing, settings, start=args.start)
    except KafkaError as error:
        logging.getLogger(__name__).error(
            "cannot produce to %s at %s: %s", args.topic, args.bootstrap_servers, error
        )
        return 1
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
