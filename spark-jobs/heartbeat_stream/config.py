"""The job's view of the settings (heartbeat_contract.settings): what it derives from them."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from heartbeat_contract.settings import Settings

from .sinks.alert_store import AlertRules
from .transforms.episodes import CriticalRule, Thresholds


class JobConfig(Settings):
    @property
    def readings_checkpoint(self) -> str:
        return f"{self.checkpoint_dir.rstrip('/')}/readings"

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(
            high_bpm=self.alert_high_bpm,
            low_bpm=self.alert_low_bpm,
            sustain=timedelta(seconds=self.alert_sustain_seconds),
        )

    @property
    def alert_rules(self) -> AlertRules:
        """The rules' global settings; customer_alert_settings overrides some per customer."""
        return AlertRules(
            thresholds=self.thresholds,
            critical=CriticalRule(
                plausible_min_bpm=self.plausible_min_bpm,
                plausible_max_bpm=self.plausible_max_bpm,
                sustain=timedelta(seconds=self.critical_sustain_seconds),
                min_readings=self.critical_min_readings,
            ),
            cooldown=timedelta(seconds=self.alert_cooldown_seconds),
        )

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


def load() -> JobConfig:
    return JobConfig()
