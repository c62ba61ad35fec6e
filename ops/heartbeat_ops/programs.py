"""The long-lived processes of the native stack, as supervisor programs.

Infrastructure starts with supervisord; the product's programs start only after `up` has
bootstrapped the database and the topic, so they never race their dependencies.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .config import ROOT, StackConfig, var_dir


@dataclass(frozen=True)
class Program:
    name: str
    command: list[str]
    address: str
    autostart: bool = True
    user: str | None = None
    stop_signal: str = "TERM"
    stop_wait_seconds: int = 30
    start_seconds: int = 5
    extra_env: dict[str, str] = field(default_factory=dict)
    # The generated secrets the program may hold: supervisord starts it through
    # ops/with-secrets.sh, as compose's entrypoint does, which removes every other one from the
    # environment every program inherits. None: the program filters its own (Superset's run.sh).
    secrets: tuple[str, ...] | None = None


# docker-compose.yml names the same per service (test_compose.py holds them equal).
JOB_SECRETS = ("HEARTBEAT_APP_PASSWORD", "HEARTBEAT_KAFKA_JOB_PASSWORD")
PRODUCER_SECRETS = ("HEARTBEAT_KAFKA_PRODUCER_PASSWORD",)
NOTIFIER_SECRETS = (
    "HEARTBEAT_NOTIFIER_PASSWORD",
    "HEARTBEAT_NOTIFIER_TOKEN",
    "HEARTBEAT_KAFKA_NOTIFIER_PASSWORD",
    "HEARTBEAT_SMTP_PASSWORD",
)


def venv_bin(tool: str) -> str:
    return str(var_dir() / "venv" / "bin" / tool)


def postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL server (Debian layout), unless PG_BIN_DIR says otherwise."""
    if os.environ.get("PG_BIN_DIR"):
        return Path(os.environ["PG_BIN_DIR"])
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name)
    )
    if not candidates:
        raise FileNotFoundError("no PostgreSQL server found; run `make install` first")
    return candidates[-1].parent


def postgres_os_user() -> str | None:
    """PostgreSQL refuses to run as root; as root we run it as the `postgres` account."""
    return "postgres" if os.geteuid() == 0 else None


def _postgres_command(data: Path, settings: dict[str, str]) -> list[str]:
    command = [str(postgres_bin_dir() / "postgres"), "-D", str(data)]
    for key, value in settings.items():
        command += ["-c", f"{key}={value}"]
    return command


def postgres_program(config: StackConfig, var: Path) -> Program:
    """The cluster prepared under `var` (var_dir() for the stack, their own for the tests)."""
    data = var / "data" / "postgres"
    socket_dir = var / "run" / "postgresql"
    settings = {
        "port": str(config.pg_port),
        "listen_addresses": "localhost",
        "unix_socket_directories": str(socket_dir),
        "shared_buffers": "256MB",
        "max_wal_size": "4GB",
        "checkpoint_timeout": "15min",
        "log_min_duration_statement": "2000",
    }
    return Program(
        name="postgres",
        command=_postgres_command(data, settings),
        address=f"{config.pg_host}:{config.pg_port}",
        user=postgres_os_user(),
        stop_signal="INT",  # fast shutdown: roll back open transactions, checkpoint, exit
        stop_wait_seconds=60,
        secrets=(),  # its superuser's password was set at initdb
    )


# The replica's application_name towards the primary (pg_stat_replication) and its slot's name.
REPLICA_NAME = "heartbeat_replica"


def postgres_replica_program(config: StackConfig, var: Path) -> Program:
    """The read replica (replica.py made its folder with pg_basebackup -R): a hot standby on
    HEARTBEAT_PG_REPLICA. Started by `up` after the copy exists, never by supervisord alone."""
    settings = {
        "port": str(config.replica_port),
        "listen_addresses": config.replica_host,
        "unix_socket_directories": str(var / "run" / "postgresql"),
        "shared_buffers": "128MB",  # it serves the dashboards only
        "hot_standby": "on",
        # Tell the primary which rows the dashboards' queries still read, so its vacuum keeps
        # them and a query is never cancelled by a conflict with recovery.
        "hot_standby_feedback": "on",
        "cluster_name": REPLICA_NAME,  # the walreceiver's application_name on the primary
        "log_min_duration_statement": "2000",
    }
    return Program(
        name="postgres-replica",
        command=_postgres_command(var / "data" / "postgres-replica", settings),
        address=f"{config.pg_replica} (read replica of {config.pg_host}:{config.pg_port})",
        autostart=False,
        user=postgres_os_user(),
        stop_signal="INT",
        stop_wait_seconds=60,
        secrets=(),
    )


def kafka_program(config: StackConfig, var: Path) -> Program:
    """The broker configured under `var` by nodes.prepare_kafka; jars from the install."""
    jars = var_dir() / "jars" / "kafka"
    return Program(
        name="kafka",
        command=[
            shutil.which("java") or "java",
            f"-Xms{config.kafka_heap}",
            f"-Xmx{config.kafka_heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            # Its fixed heap resident from the start: the broker's memory is KAFKA_HEAP at once
            # rather than creeping up to it as G1 first touches each region (+11.5 % over a
            # 30-minute soak).
            "-XX:+AlwaysPreTouch",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={ROOT / 'ops' / 'kafka' / 'log4j2.properties'}",
            "-cp",
            f"{jars}/*",
            "kafka.Kafka",
            str(var / "kafka" / "server.properties"),
        ],
        address=config.kafka_bootstrap_servers
        + (f", devices SASL_SSL {config.device_address}" if config.device_listener else ""),
        stop_wait_seconds=60,
        secrets=(),  # its logins are in its private server.properties (nodes.prepare_kafka)
    )


def product_programs(config: StackConfig) -> list[Program]:
    """The product's own processes: started by `make up` after the infrastructure is healthy."""
    return [
        Program(
            name="stream-job",
            command=["bash", str(ROOT / "spark-jobs" / "submit.sh")],
            address=f"Spark UI http://localhost:{config.spark_ui_port}",
            autostart=False,
            start_seconds=10,
            stop_signal="INT",
            stop_wait_seconds=60,
            secrets=JOB_SECRETS,
        ),
        Program(
            name="producer",
            command=[venv_bin("heartbeat-producer")],
            address=f"-> {config.kafka_topic}",
            autostart=False,
            secrets=PRODUCER_SECRETS,
        ),
        Program(
            name="notifier",
            command=[venv_bin("heartbeat-notifier")],
            address=f"http://{config.notifier_listen}",
            autostart=False,
            stop_wait_seconds=30,  # lets in-flight requests finish; pending ones resume later
            secrets=NOTIFIER_SECRETS,
        ),
        Program(
            name="superset",
            command=["bash", str(ROOT / "superset" / "run.sh")],
            address=f"http://localhost:{config.superset_port}",
            autostart=False,
            start_seconds=20,
        ),
    ]


def all_programs(config: StackConfig) -> list[Program]:
    """Every program `make up` supervises, infrastructure first."""
    var = var_dir()
    replica = [postgres_replica_program(config, var)] if config.pg_replica else []
    return [
        postgres_program(config, var),
        *replica,
        kafka_program(config, var),
        *product_programs(config),
    ]


def supervised(program: Program) -> tuple[list[str], dict[str, str]]:
    """The command and the environment (beside supervisord's own) supervisord starts a program
    with: through ops/with-secrets.sh when the program names its secrets."""
    if program.secrets is None:
        return program.command, program.extra_env
    wrapper = ["sh", str(ROOT / "ops" / "with-secrets.sh")]
    return [*wrapper, *program.command], {
        **program.extra_env,
        "HEARTBEAT_SECRETS": " ".join(program.secrets),
    }


def render_supervisord_conf(config: StackConfig, programs: list[Program]) -> str:
    """A supervisord.conf whose socket, logs and pid file all live under var/."""
    var = var_dir()
    lines = [
        "; Generated by heartbeat-ops: edit ops/heartbeat_ops/programs.py instead.",
        "[unix_http_server]",
        f"file={var}/run/supervisor.sock",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={var}/log/supervisord.log",
        f"pidfile={var}/run/supervisord.pid",
        f"childlogdir={var}/log",
        f"directory={ROOT}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{var}/run/supervisor.sock",
    ]
    for program in programs:
        command, environment = supervised(program)
        lines += [
            "",
            f"[program:{program.name}]",
            f"command={shlex.join(command)}",
            f"autostart={'true' if program.autostart else 'false'}",
            "autorestart=true",
            f"startsecs={program.start_seconds}",
            "startretries=10",  # supervisor waits 1 s longer after each failed start
            f"stopsignal={program.stop_signal}",
            f"stopwaitsecs={program.stop_wait_seconds}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={var}/log/{program.name}.log",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=3",
        ]
        if program.user:
            lines.append(f"user={program.user}")
        if environment:
            pairs = ",".join(f'{k}="{v}"' for k, v in environment.items())
            lines.append(f"environment={pairs}")
    return "\n".join(lines) + "\n"
