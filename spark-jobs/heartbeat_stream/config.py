"""The job's configuration, from environment variables with documented defaults."""

from __future__ import annotations

import hashlib
import os
import zoneinfo
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from heartbeat_contract import (
    BRADYCARDIA_BELOW_BPM,
    DEFAULT_NAIVE_TIMESTAMP_ZONE,
    NAIVE_TIMESTAMP_ZONE_ENV,
    REJECT_NAIVE_TIMESTAMPS,
    TACHYCARDIA_ABOVE_BPM,
)

from .episodes import Thresholds


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass(frozen=True)
class JobConfig:
    kafka_bootstrap_servers: str
    kafka_topic: str
    alerts_topic: str
    starting_offsets: str
    max_offsets_per_trigger: int
    fail_on_data_loss: bool
    checkpoint_dir: str
    trigger_interval: str
    naive_timestamp_zone: str
    thresholds: Thresholds
    pg_host: str
    pg_port: int
    pg_database: str
    pg_user: str
    pg_password: str
    jdbc_batch_size: int
    jdbc_writers: int | None  # None: one per core Spark has (its default parallelism)
    sink_retry_seconds: float
    raw_retention_days: int
    metrics_retention_days: int
    retention_interval_seconds: float

    @property
    def readings_checkpoint(self) -> str:
        return f"{self.checkpoint_dir.rstrip('/')}/readings"

    @property
    def jdbc_url(self) -> str:
        return (
            f"jdbc:postgresql://{self.pg_host}:{self.pg_port}/{self.pg_database}"
            "?reWriteBatchedInserts=true"
        )

    @property
    def jdbc_properties(self) -> dict[str, str]:
        return {
            "user": self.pg_user,
            "password": self.pg_password,
            "driver": "org.postgresql.Driver",
            "batchsize": str(self.jdbc_batch_size),
        }

    @property
    def libpq_params(self) -> dict[str, object]:
        return {
            "host": self.pg_host,
            "port": self.pg_port,
            "dbname": self.pg_database,
            "user": self.pg_user,
            "password": self.pg_password,
            "connect_timeout": 5,
            "application_name": "heartbeat-stream",
            # The batch statements are short and planned afresh each time: compiling them with
            # JIT cost more than running them (1 s of 1.8 s on a 200k batch). A batch's
            # aggregates fit in memory with some room.
            "options": "-c jit=off -c work_mem=64MB",
        }

    @property
    def sink_id(self) -> str:
        return sink_id_for(self.checkpoint_dir)


def sink_id_for(checkpoint_dir: str) -> str:
    """Stable per checkpoint: separates a job's staged rows and alert state from others'."""
    return hashlib.sha256(checkpoint_dir.rstrip("/").encode()).hexdigest()[:16]


def naive_timestamp_zone(value: str) -> str:
    """An IANA zone name or `reject`; anything else fails at start with the variable's name."""
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


def load() -> JobConfig:
    var_dir = Path(_env("HEARTBEAT_VAR_DIR", str(Path(__file__).resolve().parents[2] / "var")))
    return JobConfig(
        kafka_bootstrap_servers=_env("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
        kafka_topic=_env("KAFKA_TOPIC", "heart-rate-readings"),
        alerts_topic=_env("KAFKA_ALERTS_TOPIC", "heart-rate-alerts"),
        starting_offsets=_env("HEARTBEAT_STARTING_OFFSETS", "earliest"),
        max_offsets_per_trigger=int(_env("HEARTBEAT_MAX_OFFSETS_PER_TRIGGER", "100000")),
        fail_on_data_loss=_env("HEARTBEAT_FAIL_ON_DATA_LOSS", "true").lower() == "true",
        checkpoint_dir=_env("HEARTBEAT_CHECKPOINT_DIR", str(var_dir / "checkpoints" / "stream")),
        # A batch starts at most this often; a batch that takes longer is followed at once.
        trigger_interval=_env("HEARTBEAT_TRIGGER_INTERVAL", "100 milliseconds"),
        naive_timestamp_zone=naive_timestamp_zone(
            _env(NAIVE_TIMESTAMP_ZONE_ENV, DEFAULT_NAIVE_TIMESTAMP_ZONE)
        ),
        thresholds=Thresholds(
            high_bpm=int(_env("HEARTBEAT_ALERT_HIGH_BPM", str(TACHYCARDIA_ABOVE_BPM))),
            low_bpm=int(_env("HEARTBEAT_ALERT_LOW_BPM", str(BRADYCARDIA_BELOW_BPM))),
            sustain=timedelta(seconds=float(_env("HEARTBEAT_ALERT_SUSTAIN_SECONDS", "60"))),
        ),
        pg_host=_env("PGHOST", "localhost"),
        pg_port=int(_env("PGPORT", "5432")),
        pg_database=_env("PGDATABASE", "heartbeat"),
        pg_user=_env("PGUSER", "heartbeat_app"),
        pg_password=_env("PGPASSWORD", ""),
        jdbc_batch_size=int(_env("HEARTBEAT_JDBC_BATCH_SIZE", "10000")),
        jdbc_writers=int(_env("HEARTBEAT_JDBC_WRITERS", "0")) or None,
        sink_retry_seconds=float(_env("HEARTBEAT_SINK_RETRY_SECONDS", "60")),
        raw_retention_days=int(_env("HEARTBEAT_RAW_RETENTION_DAYS", "30")),
        metrics_retention_days=int(_env("HEARTBEAT_METRICS_RETENTION_DAYS", "14")),
        retention_interval_seconds=float(_env("HEARTBEAT_RETENTION_INTERVAL_SECONDS", "3600")),
    )
