"""The job's configuration, from environment variables with documented defaults."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass(frozen=True)
class JobConfig:
    kafka_bootstrap_servers: str
    kafka_topic: str
    starting_offsets: str
    max_offsets_per_trigger: int
    fail_on_data_loss: bool
    checkpoint_dir: str
    trigger_interval: str
    pg_host: str
    pg_port: int
    pg_database: str
    pg_user: str
    pg_password: str
    jdbc_batch_size: int
    sink_retry_seconds: float

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
        }

    @property
    def sink_id(self) -> str:
        """Stable per checkpoint: separates this job's staged rows from any other job's."""
        return hashlib.sha256(self.checkpoint_dir.encode()).hexdigest()[:16]


def load() -> JobConfig:
    var_dir = Path(_env("HEARTBEAT_VAR_DIR", str(Path(__file__).resolve().parents[2] / "var")))
    return JobConfig(
        kafka_bootstrap_servers=_env("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
        kafka_topic=_env("KAFKA_TOPIC", "heart-rate-readings"),
        starting_offsets=_env("HEARTBEAT_STARTING_OFFSETS", "earliest"),
        max_offsets_per_trigger=int(_env("HEARTBEAT_MAX_OFFSETS_PER_TRIGGER", "200000")),
        fail_on_data_loss=_env("HEARTBEAT_FAIL_ON_DATA_LOSS", "true").lower() == "true",
        checkpoint_dir=_env(
            "HEARTBEAT_CHECKPOINT_DIR", str(var_dir / "checkpoints" / "stream-job")
        ),
        trigger_interval=_env("HEARTBEAT_TRIGGER_INTERVAL", "1 second"),
        pg_host=_env("PGHOST", "localhost"),
        pg_port=int(_env("PGPORT", "5432")),
        pg_database=_env("PGDATABASE", "heartbeat"),
        pg_user=_env("PGUSER", "heartbeat_app"),
        pg_password=_env("PGPASSWORD", ""),
        jdbc_batch_size=int(_env("HEARTBEAT_JDBC_BATCH_SIZE", "10000")),
        sink_retry_seconds=float(_env("HEARTBEAT_SINK_RETRY_SECONDS", "60")),
    )
