"""`heartbeat-ops`: the commands behind `make up`, `make down`, `make status`, `make logs`."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable

from pydantic import ValidationError

from . import (
    accounts,
    alerts_cli,
    backup,
    container,
    database,
    devices_cli,
    health,
    history_cli,
    nodes,
    notify_cli,
    principals,
    replica,
    supervisor,
    topics,
)
from .config import StackConfig, ensure_secrets, load, scrub_ambient_libpq, var_dir
from .database import ConfigurationError
from .programs import all_programs

INFRASTRUCTURE = ("postgres", "kafka")
# Infrastructure that `up` starts itself once it can (the replica needs the provisioned primary).
INFRASTRUCTURE_ALL = (*INFRASTRUCTURE, "postgres-replica")


class Steps:
    """Prints each step with its duration, so a slow start shows where the time went."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def run(self, label: str, action: Callable[[], object]) -> object:
        print(f"==> {label}", flush=True)
        t0 = time.monotonic()
        result = action()
        suffix = f": {result}" if isinstance(result, str) and result else ""
        print(f"    done in {time.monotonic() - t0:.1f}s{suffix}", flush=True)
        return result


def _readiness_checks(config: StackConfig) -> dict[str, Callable[[], bool]]:
    return {
        "postgres": lambda: health.postgres_ready(config),
        "kafka": lambda: health.kafka_ready(config),
        "postgres-replica": lambda: replica.replica_ready(config),
        "superset": lambda: health.http_ready(f"http://localhost:{config.superset_port}/health"),
        "notifier": lambda: health.http_ready(f"http://{config.notifier_listen}/health"),
    }


def provision(config: StackConfig, steps: Steps) -> None:
    """Wait for PostgreSQL and Kafka, then roles, migrations and topics: idempotent."""
    checks = _readiness_checks(config)
    steps.run("wait for PostgreSQL", lambda: health.wait_until("postgres", checks["postgres"]))
    database.check_product_database(config)  # before anything is written anywhere
    steps.run(
        "repair the maintenance database's access (CONNECT for PUBLIC on postgres)",
        lambda: database.repair_maintenance_database(config),
    )
    steps.run(
        "create roles and apply migrations",
        lambda: ", ".join(database.bootstrap(config)) or "schema up to date",
    )
    steps.run(
        "read replica: replication role and slot on the primary",
        lambda: replica.provision(config),
    )
    steps.run("wait for Kafka", lambda: health.wait_until("kafka", checks["kafka"]))
    for topic in (config.kafka_topic, config.kafka_alerts_topic):
        steps.run(
            f"ensure topic {topic} ({config.kafka_partitions} partitions)",
            lambda t=topic: topics.ensure_topic(config, t, config.kafka_partitions),
        )
    steps.run(
        "ensure Kafka principals and ACLs (job, producer, notifier)",
        lambda: ", ".join(principals.ensure_principals(config)),
    )


def cmd_provision(_: argparse.Namespace) -> int:
    """What docker compose's one-shot `init` service runs against its containers."""
    ensure_secrets()
    provision(load(), Steps())
    return 0


def cmd_secrets(_: argparse.Namespace) -> int:
    """Generate missing secrets into var/secrets.env (in compose, `serve postgres` does this)."""
    names = sorted(ensure_secrets())
    print(f"secrets in {var_dir() / 'secrets.env'}: {', '.join(names)}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    steps = Steps()
    ensure_secrets()
    config = load()
    checks = _readiness_checks(config)
    hba = var_dir() / "data" / "postgres" / "pg_hba.conf"
    hba_before = hba.read_text() if hba.exists() else None
    steps.run(
        "prepare PostgreSQL data folder",
        lambda: "initialised" if nodes.prepare_postgres(config, var_dir()) else "kept",
    )
    hba_changed = hba_before is not None and hba.read_text() != hba_before
    steps.run(
        "prepare Kafka storage",
        lambda: "formatted" if nodes.prepare_kafka(config, var_dir()) else "kept",
    )
    supervisor.write_conf(config)
    steps.run(
        "start supervisord", lambda: "started" if supervisor.start(config) else "already running"
    )
    supervisor.ctl("start", *INFRASTRUCTURE)
    provision(config, steps)
    if hba_changed:  # replication rules of an existing cluster (README, "Read replica")
        replica.reload_configuration(config)
    if config.pg_replica:
        start_replica(config, steps, checks["postgres-replica"])
    elif replica.forget(var_dir()):
        print("    removed the copy of a read replica that is now off (HEARTBEAT_PG_REPLICA)")
    if not args.infra_only:
        product = [p.name for p in all_programs(config) if p.name not in INFRASTRUCTURE_ALL]
        supervisor.start_without_waiting(product)  # side by side; readiness is checked below
        for name in product:
            check = checks.get(name, lambda n=name: supervisor.states().get(n) == "RUNNING")
            steps.run(f"wait for {name}", lambda n=name, c=check: health.wait_until(n, c, 300))
    print(f"\nStack up in {time.monotonic() - steps.started:.1f}s.\n")
    return cmd_status(args)


def start_replica(config: StackConfig, steps: Steps, ready: Callable[[], bool]) -> None:
    """The read replica, natively: copied from the running primary once, then supervised."""
    steps.run(
        f"prepare the read replica ({config.pg_replica})",
        lambda: "copied with pg_basebackup" if replica.base_backup(config, var_dir()) else "kept",
    )
    supervisor.start_without_waiting(["postgres-replica"])
    steps.run(
        "wait for the read replica", lambda: health.wait_until("postgres-replica", ready, 300)
    )


def cmd_down(_: argparse.Namespace) -> int:
    stopped = supervisor.shutdown()
    print("stack stopped (data kept)" if stopped else "stack was not running")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    cmd_down(args)
    for sub in ("data", "log", "kafka", "checkpoints", "run"):
        shutil.rmtree(var_dir() / sub, ignore_errors=True)
    print(f"removed data, logs and checkpoints under {var_dir()} (installs and secrets kept)")
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    config = load()
    states = supervisor.states()
    print(f"{'component':<18}{'state':<10}address")
    for program in all_programs(config):
        state = states.get(program.name, "DOWN")
        print(f"{program.name:<18}{state:<10}{program.address}")
    return 0


def cmd_logs(_: argparse.Namespace) -> int:
    config = load()
    log_dir = var_dir() / "log"
    print(f"supervisord       {log_dir / 'supervisord.log'}")
    for program in all_programs(config):
        print(f"{program.name:<18}{log_dir / (program.name + '.log')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="heartbeat-ops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="install nothing, start everything, wait until healthy")
    up.add_argument(
        "--infra-only",
        action="store_true",
        help="start PostgreSQL and Kafka only (what the tests need)",
    )
    up.set_defaults(func=cmd_up)
    secrets_help = "generate missing secrets (existing ones are never overwritten)"
    sub.add_parser("secrets", help=secrets_help).set_defaults(func=cmd_secrets)
    sub.add_parser(
        "provision", help="wait for PostgreSQL and Kafka; roles, migrations, topics"
    ).set_defaults(func=cmd_provision)
    sub.add_parser("down", help="stop every process `up` started; keep data").set_defaults(
        func=cmd_down
    )
    sub.add_parser("clean", help="stop and delete data, logs, checkpoints").set_defaults(
        func=cmd_clean
    )
    sub.add_parser("status", help="each component up or down, with its address").set_defaults(
        func=cmd_status
    )
    sub.add_parser("logs", help="where each component logs").set_defaults(func=cmd_logs)
    container.add_commands(sub)
    history_cli.add_commands(sub)
    notify_cli.add_commands(sub)
    alerts_cli.add_commands(sub)
    devices_cli.add_commands(sub)
    accounts.add_commands(sub)
    backup.add_commands(sub)
    args = parser.parse_args(argv)
    ignored = scrub_ambient_libpq()  # before anything connects or starts a child
    if ignored and args.command in ("up", "provision"):
        print(f"note: ignoring {', '.join(ignored)} from your shell (the stack's roles come from"
              " HEARTBEAT_* variables or var/secrets.env; README, Configuration)")  # fmt: skip
    try:
        return args.func(args)
    except (ConfigurationError, ValidationError) as error:  # a bad or unknown setting
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    except (health.NotReady, TimeoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
