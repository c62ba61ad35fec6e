"""Every setting of the stack: one environment variable each, with its default, read here only.

The same names configure the native stack (`make up`), docker compose, the streaming job under
spark-submit and the producer. Precedence: the environment (an empty value counts as unset),
then `stored` values (the secrets generated on first run), then the defaults below. README,
"Configuration", lists them.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .alerts import (
    BRADYCARDIA_BELOW_BPM,
    PLAUSIBLE_MAX_BPM,
    PLAUSIBLE_MIN_BPM,
    TACHYCARDIA_ABOVE_BPM,
)
from .message import DEFAULT_NAIVE_TIMESTAMP_ZONE, NAIVE_TIMESTAMP_ZONE_ENV, REJECT_NAIVE_TIMESTAMPS

ROOT = Path(__file__).resolve().parents[2]  # the checkout (natively; containers set the var dir)

# HEARTBEAT_* names that are not fields below: read by the stack's shell scripts, Superset's
# config or docker, not by this model. HEARTBEAT_TEST_* names belong to the test suite.
OTHER_HEARTBEAT_VARIABLES = frozenset(
    {
        "HEARTBEAT_RUN_AS",
        "HEARTBEAT_SECRETS_LOADED",
        "HEARTBEAT_SECRETS",
        "HEARTBEAT_COMPOSE_STATE",
        "HEARTBEAT_SPARK_JARS_DIR",
        "HEARTBEAT_DASHBOARD_REFRESH_SECONDS",
    }
)
TEST_VARIABLE_PREFIX = "HEARTBEAT_TEST_"


class UnknownSettingError(ValueError):
    """A HEARTBEAT_* variable no part of the stack reads: a typo or a retired setting."""


def unknown_heartbeat_variables(environ: Mapping[str, str]) -> list[str]:
    """HEARTBEAT_* names in `environ` that are neither a setting nor one of the known others."""
    known = {field.alias for field in Settings.model_fields.values()} | OTHER_HEARTBEAT_VARIABLES
    return sorted(
        name
        for name in environ
        if name.startswith("HEARTBEAT_")
        and name not in known
        and not name.startswith(TEST_VARIABLE_PREFIX)
    )


class Settings(BaseSettings):
    """The whole configuration, typed; a bad value fails at start with the variable's name."""

    model_config = SettingsConfigDict(
        env_ignore_empty=True, extra="ignore", frozen=True, case_sensitive=True
    )

    # Where installs, data, logs, checkpoints and generated secrets live (ignored by git).
    var_dir: Path = Field(ROOT / "var", alias="HEARTBEAT_VAR_DIR")

    kafka_bootstrap_servers: str = Field("localhost:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_topic: str = Field("heart-rate-readings", alias="KAFKA_TOPIC")
    kafka_alerts_topic: str = Field("heart-rate-alerts", alias="KAFKA_ALERTS_TOPIC")
    kafka_partitions: int = Field(3, alias="KAFKA_PARTITIONS")
    kafka_controller_port: int = Field(9093, alias="KAFKA_CONTROLLER_PORT")
    kafka_heap: str = Field("512m", alias="KAFKA_HEAP")
    # A Kafka cluster (README, "A Kafka cluster"): node N is the N-th address of
    # KAFKA_BOOTSTRAP_SERVERS; several addresses make every node a broker and a controller voter.
    kafka_node_id: int = Field(1, ge=1, alias="HEARTBEAT_KAFKA_NODE_ID")
    # Copies of every partition the topics and Kafka's internal topics keep; writes need
    # min(2, this) of them in sync (min.insync.replicas). 1: the single native broker.
    kafka_replication_factor: int = Field(1, ge=1, alias="HEARTBEAT_KAFKA_REPLICATION_FACTOR")
    # The KRaft cluster id every node formats its storage with; "": generated on first run
    # into the secrets file (var/secrets.env), so all nodes of a stack share it.
    kafka_cluster_id: str = Field("", alias="HEARTBEAT_KAFKA_CLUSTER_ID")
    # Kafka principals (README, "Kafka principals"): every client logs in on the internal
    # listener; passwords are generated on first run. The admin is the broker's super user.
    kafka_admin_user: str = Field("heartbeat-admin", alias="HEARTBEAT_KAFKA_ADMIN_USER")
    kafka_admin_password: str = Field("", alias="HEARTBEAT_KAFKA_ADMIN_PASSWORD")
    kafka_job_user: str = Field("heartbeat-job", alias="HEARTBEAT_KAFKA_JOB_USER")
    kafka_job_password: str = Field("", alias="HEARTBEAT_KAFKA_JOB_PASSWORD")
    kafka_producer_user: str = Field("heartbeat-producer", alias="HEARTBEAT_KAFKA_PRODUCER_USER")
    kafka_producer_password: str = Field("", alias="HEARTBEAT_KAFKA_PRODUCER_PASSWORD")
    kafka_notifier_user: str = Field("heartbeat-notifier", alias="HEARTBEAT_KAFKA_NOTIFIER_USER")
    kafka_notifier_password: str = Field("", alias="HEARTBEAT_KAFKA_NOTIFIER_PASSWORD")
    # Devices from outside (README, "Devices from outside"): "" keeps the broker loopback-only;
    # HOST:PORT adds a SASL_SSL (SCRAM-SHA-512) listener there, with ACLs for device principals.
    device_listener: str = Field("", alias="HEARTBEAT_DEVICE_LISTENER")
    # HOST:PORT devices dial (and the broker certificate names); "": the listener's own address,
    # or this machine's name when the listener binds every interface (0.0.0.0 / ::).
    device_advertised: str = Field("", alias="HEARTBEAT_DEVICE_ADVERTISED")

    # Where PostgreSQL is, and the stack's roles: heartbeat's own names only, never libpq's PG*
    # variables, so a psql user's shell cannot redirect the stack (README, "Configuration").
    pg_host: str = Field("localhost", alias="HEARTBEAT_PG_HOST")
    pg_port: int = Field(5432, alias="HEARTBEAT_PG_PORT")
    pg_database: str = Field("heartbeat", alias="HEARTBEAT_PG_DATABASE")
    pg_user: str = Field("heartbeat_app", alias="HEARTBEAT_APP_USER")  # the job's role
    pg_password: str = Field("", alias="HEARTBEAT_APP_PASSWORD")
    pg_superuser: str = Field("postgres", alias="POSTGRES_USER")
    pg_superuser_password: str = Field("", alias="POSTGRES_PASSWORD")
    reader_user: str = Field("heartbeat_reader", alias="HEARTBEAT_READER_USER")  # Superset's
    reader_password: str = Field("", alias="HEARTBEAT_READER_PASSWORD")
    # A hot standby of PostgreSQL that Superset's dashboards read (README, "Read replica"):
    # "" (default) runs none; HOST:PORT runs one there (natively a second cluster on this host,
    # made by pg_basebackup from the primary). The job, the notifier and ops write the primary.
    pg_replica: str = Field("", alias="HEARTBEAT_PG_REPLICA")
    # The role the replica streams WAL with: REPLICATION and LOGIN only; password generated.
    replication_user: str = Field("heartbeat_replication", alias="HEARTBEAT_REPLICATION_USER")
    replication_password: str = Field("", alias="HEARTBEAT_REPLICATION_PASSWORD")
    superset_db_user: str = Field("superset", alias="SUPERSET_DB_USER")
    superset_db_password: str = Field("", alias="SUPERSET_DB_PASSWORD")
    superset_db_name: str = Field("superset", alias="SUPERSET_DB_NAME")  # Superset's metadata
    superset_port: int = Field(8088, alias="SUPERSET_PORT")

    # The streaming job (spark-jobs/submit.sh reads the SPARK_* knobs of spark-submit itself).
    spark_ui_port: int = Field(4040, alias="SPARK_UI_PORT")
    starting_offsets: str = Field("earliest", alias="HEARTBEAT_STARTING_OFFSETS")
    # A backlog's batches: 250,000 drained 1.13x as fast as 100,000 in the same run (Spark's fixed
    # cost per batch spread wider), for ~5 s per batch instead of ~2 s; live heap under 150 MiB.
    max_offsets_per_trigger: int = Field(250_000, alias="HEARTBEAT_MAX_OFFSETS_PER_TRIGGER")
    # Fewer readings than this wait for more, at most max_trigger_delay, before a batch starts:
    # a batch costs ~0.3 s of CPU whatever its size, so a trickle runs one a second, not three.
    min_offsets_per_trigger: int = Field(250, ge=0, alias="HEARTBEAT_MIN_OFFSETS_PER_TRIGGER")
    max_trigger_delay: str = Field(
        "1s", pattern=r"^[0-9]+(ms|s)$", alias="HEARTBEAT_MAX_TRIGGER_DELAY"
    )
    fail_on_data_loss: bool = Field(True, alias="HEARTBEAT_FAIL_ON_DATA_LOSS")
    checkpoint_dir: str = Field("", alias="HEARTBEAT_CHECKPOINT_DIR")  # "": var/checkpoints/stream
    # A batch starts at most this often; a batch that takes longer is followed at once.
    trigger_interval: str = Field("100 milliseconds", alias="HEARTBEAT_TRIGGER_INTERVAL")
    naive_timestamp_zone: str = Field(DEFAULT_NAIVE_TIMESTAMP_ZONE, alias=NAIVE_TIMESTAMP_ZONE_ENV)
    alert_high_bpm: int = Field(TACHYCARDIA_ABOVE_BPM, alias="HEARTBEAT_ALERT_HIGH_BPM")
    alert_low_bpm: int = Field(BRADYCARDIA_BELOW_BPM, alias="HEARTBEAT_ALERT_LOW_BPM")
    alert_sustain_seconds: float = Field(60.0, alias="HEARTBEAT_ALERT_SUSTAIN_SECONDS")
    # A new episode of a kind within this long after the customer's last one ended reopens it.
    alert_cooldown_seconds: float = Field(600.0, ge=0, alias="HEARTBEAT_ALERT_COOLDOWN_SECONDS")
    # Critical episodes: quarantined out-of-range readings inside the plausible band, sustained.
    plausible_min_bpm: int = Field(PLAUSIBLE_MIN_BPM, alias="HEARTBEAT_PLAUSIBLE_MIN_BPM")
    plausible_max_bpm: int = Field(PLAUSIBLE_MAX_BPM, alias="HEARTBEAT_PLAUSIBLE_MAX_BPM")
    critical_sustain_seconds: float = Field(15.0, gt=0, alias="HEARTBEAT_CRITICAL_SUSTAIN_SECONDS")
    critical_min_readings: int = Field(3, ge=1, alias="HEARTBEAT_CRITICAL_MIN_READINGS")
    # Silent devices: nothing reached Kafka from a customer for this long.
    silent_after_seconds: float = Field(300.0, gt=0, alias="HEARTBEAT_SILENT_AFTER_SECONDS")
    silent_check_seconds: float = Field(10.0, gt=0, alias="HEARTBEAT_SILENT_CHECK_SECONDS")
    silent_outage_share: float = Field(0.5, gt=0, le=1, alias="HEARTBEAT_SILENT_OUTAGE_SHARE")
    # Personal baseline (README, "Personal baseline").
    baseline_margin_bpm: float = Field(4.0, gt=0, alias="HEARTBEAT_BASELINE_MARGIN_BPM")
    baseline_elevated_days: int = Field(2, ge=1, alias="HEARTBEAT_BASELINE_ELEVATED_DAYS")
    baseline_window_days: int = Field(28, ge=2, alias="HEARTBEAT_BASELINE_WINDOW_DAYS")
    baseline_min_days: int = Field(7, ge=1, alias="HEARTBEAT_BASELINE_MIN_DAYS")
    # A UTC day has a resting rate when it has this many hours with this many readings each.
    baseline_day_min_hours: int = Field(20, ge=1, le=24, alias="HEARTBEAT_BASELINE_DAY_MIN_HOURS")
    baseline_hour_min_readings: int = Field(10, ge=1, alias="HEARTBEAT_BASELINE_HOUR_MIN_READINGS")
    baseline_refresh_seconds: float = Field(
        3600.0, gt=0, alias="HEARTBEAT_BASELINE_REFRESH_SECONDS"
    )
    jdbc_batch_size: int = Field(10_000, alias="HEARTBEAT_JDBC_BATCH_SIZE")
    jdbc_writers: int = Field(0, alias="HEARTBEAT_JDBC_WRITERS")  # 0: one per core Spark has
    # Kafka offset ranges a batch is split into (Spark's minPartitions); 0: the topic's partitions.
    kafka_min_partitions: int = Field(0, ge=0, alias="HEARTBEAT_KAFKA_MIN_PARTITIONS")
    sink_retry_seconds: float = Field(60.0, alias="HEARTBEAT_SINK_RETRY_SECONDS")
    # A batch's transaction runs while Spark stages the next one (README, "Exactly once...").
    overlap_commit: bool = Field(True, alias="HEARTBEAT_OVERLAP_COMMIT")
    raw_retention_days: int = Field(30, ge=1, alias="HEARTBEAT_RAW_RETENTION_DAYS")
    metrics_retention_days: int = Field(14, ge=1, alias="HEARTBEAT_METRICS_RETENTION_DAYS")
    retention_interval_seconds: float = Field(3600.0, alias="HEARTBEAT_RETENTION_INTERVAL_SECONDS")

    # The notifier (notifier/heartbeat_notifier): alert events to webhooks and e-mail.
    notifier_user: str = Field("heartbeat_notifier", alias="HEARTBEAT_NOTIFIER_USER")
    notifier_password: str = Field("", alias="HEARTBEAT_NOTIFIER_PASSWORD")
    notifier_token: str = Field("", alias="HEARTBEAT_NOTIFIER_TOKEN")  # bearer of the ack API
    notifier_listen: str = Field("127.0.0.1:8095", alias="HEARTBEAT_NOTIFIER_LISTEN")
    notifier_group: str = Field("heartbeat-notifier", alias="HEARTBEAT_NOTIFIER_GROUP")
    # A main loop that has not come round for this long restarts the notifier in place.
    notifier_stuck_seconds: float = Field(60.0, gt=0, alias="HEARTBEAT_NOTIFIER_STUCK_SECONDS")
    notify_max_attempts: int = Field(8, ge=1, alias="HEARTBEAT_NOTIFY_MAX_ATTEMPTS")
    notify_timeout_seconds: float = Field(10.0, gt=0, alias="HEARTBEAT_NOTIFY_TIMEOUT_SECONDS")
    notify_concurrency: int = Field(4, ge=1, alias="HEARTBEAT_NOTIFY_CONCURRENCY")  # per channel
    # Retries wait about this long, doubling each time (with jitter), capped at the maximum.
    notify_backoff_seconds: float = Field(1.0, gt=0, alias="HEARTBEAT_NOTIFY_BACKOFF_SECONDS")
    notify_backoff_max_seconds: float = Field(
        300.0, gt=0, alias="HEARTBEAT_NOTIFY_BACKOFF_MAX_SECONDS"
    )
    # A channel whose oldest pending delivery has waited this long is failing (too slow for its
    # traffic), as is one whose delivery went dead: a delivery_failing notice for the others.
    notify_late_seconds: float = Field(600.0, gt=0, alias="HEARTBEAT_NOTIFY_LATE_SECONDS")
    # A failing channel's notice is resolved once it has delivered and shown no sign of failing
    # for this long (a channel that flaps stays one open notice).
    notify_recovered_after_seconds: float = Field(
        300.0, gt=0, alias="HEARTBEAT_NOTIFY_RECOVERED_AFTER_SECONDS"
    )
    smtp_host: str = Field("localhost", alias="HEARTBEAT_SMTP_HOST")
    smtp_port: int = Field(25, alias="HEARTBEAT_SMTP_PORT")
    smtp_user: str = Field("", alias="HEARTBEAT_SMTP_USER")
    smtp_password: str = Field("", alias="HEARTBEAT_SMTP_PASSWORD")
    smtp_tls: Literal["none", "starttls", "ssl"] = Field("starttls", alias="HEARTBEAT_SMTP_TLS")
    smtp_from: str = Field("heartbeat@localhost", alias="HEARTBEAT_SMTP_FROM")
    # Where people open Superset: the notifications link to the customer's dashboard there.
    dashboard_url: str = Field("http://localhost:8088", alias="HEARTBEAT_DASHBOARD_URL")

    # The supervised producer (flags win; argparse validates these like the flags).
    producer_customers: str | None = Field(None, alias="PRODUCER_CUSTOMERS")
    producer_rate: str | None = Field(None, alias="PRODUCER_RATE")
    producer_malformed_rate: str | None = Field(None, alias="PRODUCER_MALFORMED_RATE")
    producer_critical_rate: str | None = Field(None, alias="PRODUCER_CRITICAL_RATE")
    producer_format: str | None = Field(None, alias="PRODUCER_FORMAT")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment beats `stored` (passed as keyword arguments by `resolve`).
        return env_settings, init_settings

    @classmethod
    def resolve(cls, stored: Mapping[str, str] | None = None) -> Self:
        """The settings from the environment, then `stored` (e.g. the secrets file's values)."""
        return cls(**{name: value for name, value in (stored or {}).items() if value})

    @model_validator(mode="after")
    def _no_unknown_heartbeat_variables(self) -> Self:
        # A stale or misspelt setting would otherwise be ignored silently (extra="ignore").
        unknown = unknown_heartbeat_variables(os.environ)
        if unknown:
            raise UnknownSettingError(
                f"unknown setting(s) in the environment: {', '.join(unknown)}; no part of "
                "heartbeat reads them (a typo or a retired setting?). Unset them; README, "
                '"Configuration", lists every setting.'
            )
        return self

    @model_validator(mode="after")
    def _checkpoint_under_var_dir(self) -> Self:
        if not self.checkpoint_dir:
            default = str(self.var_dir / "checkpoints" / "stream")
            object.__setattr__(self, "checkpoint_dir", default)
        return self

    @field_validator("device_listener", "device_advertised", "pg_replica")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        if value:
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{value!r} is not HOST:PORT (e.g. 0.0.0.0:9094)")
        return value

    @field_validator("kafka_cluster_id")
    @classmethod
    def _kafka_uuid(cls, value: str) -> str:
        # Kafka's Uuid in URL-safe base64: the format tool refuses anything else, late.
        if value and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", value):
            raise ValueError(f"{value!r} is not a KRaft cluster id (22 URL-safe base64 characters)")
        return value

    @field_validator("var_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.resolve()

    @field_validator("naive_timestamp_zone")
    @classmethod
    def _zone_or_reject(cls, value: str) -> str:
        if value == REJECT_NAIVE_TIMESTAMPS:
            return value
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(
                f"{NAIVE_TIMESTAMP_ZONE_ENV}={value!r} is neither an IANA time zone (e.g. UTC, "
                f"Europe/Berlin) nor {REJECT_NAIVE_TIMESTAMPS!r}"
            ) from error
        return value


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a file such as the generated secrets (var/secrets.env); blank lines and
    # comments are skipped. Shared by heartbeat-ops, which writes it, and the programs that read
    it natively (in containers the entrypoint exports its values instead)."""
    if not path.exists():
        return {}
    try:
        text = path.read_text()
    except PermissionError:
        # A container's program after its entrypoint (ops/with-secrets.sh) exported this
        # root-only file's values and dropped to HEARTBEAT_RUN_AS: the values are in the
        # environment already. Anywhere else an unreadable secrets file is an error.
        if os.environ.get("HEARTBEAT_RUN_AS") and os.getuid() != 0:
            return {}
        raise
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values
