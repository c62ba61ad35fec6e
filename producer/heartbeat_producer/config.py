"""Settings of one producer run, with the environment as the source of connection defaults.

Every default is chosen so that `heartbeat-producer` with no arguments (how supervisord runs it)
is a sensible live feed: 100 customers, one reading each per second, a few outliers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from heartbeat_contract.kafka_security import PRODUCER, kafka_client_security
from heartbeat_contract.settings import Settings, read_env_file

DEFAULT_BOOTSTRAP_SERVERS = Settings.model_fields["kafka_bootstrap_servers"].default
DEFAULT_TOPIC = Settings.model_fields["kafka_topic"].default

DEFAULT_CUSTOMERS = 100
DEFAULT_INVALID_RATE = 0.005  # sensor glitches: out_of_range readings
DEFAULT_ABNORMAL_RATE = 0.02  # share of time customers spend in abnormal episodes
DEFAULT_MALFORMED_RATE = 0.0  # broken messages are opt-in (quarantine tests, demos)
# Persistent critical episodes (30-38 or 185-220 bpm for 20-60 s) per customer per hour: about
# 3 an hour over 1,000 customers, enough for the dashboards to show real ones.
DEFAULT_CRITICAL_RATE = 0.003

CONTRACT_FORMAT = "contract"  # heartbeat_contract's messages
LEGACY_FORMAT = "legacy"  # the original system's: integer ids, timestamps without an offset
MESSAGE_FORMATS = (CONTRACT_FORMAT, LEGACY_FORMAT)


@dataclass(frozen=True)
class SimulationConfig:
    """What the simulated population looks like; pure data, no I/O.

    Rates are shares of messages (invalid, malformed) or of time (abnormal), each in [0, 1).
    """

    customers: int = DEFAULT_CUSTOMERS
    seed: int = 0
    invalid_rate: float = DEFAULT_INVALID_RATE
    abnormal_rate: float = DEFAULT_ABNORMAL_RATE
    malformed_rate: float = DEFAULT_MALFORMED_RATE
    critical_rate: float = DEFAULT_CRITICAL_RATE  # per customer per hour
    customer_prefix: str = "C"
    message_format: str = CONTRACT_FORMAT
    legacy_zone: str = "UTC"  # the zone of the legacy format's wall-clock timestamps

    def __post_init__(self) -> None:
        if not 1 <= len(self.customer_prefix) <= 40 or not self.customer_prefix.isprintable():
            raise ValueError("customer_prefix must be 1-40 printable characters")
        if self.message_format not in MESSAGE_FORMATS:
            raise ValueError(f"message format must be one of {MESSAGE_FORMATS}")
        if self.message_format == LEGACY_FORMAT and self.malformed_rate:
            raise ValueError("the legacy format has no malformed messages: use --malformed-rate 0")
        if self.customers < 1:
            raise ValueError(f"customers must be at least 1, got {self.customers}")
        for name in ("invalid_rate", "abnormal_rate", "malformed_rate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if not 0.0 <= self.critical_rate <= 60.0:
            raise ValueError(f"critical_rate must be in [0, 60] per hour, got {self.critical_rate}")
        if self.invalid_rate + self.malformed_rate > 1.0:
            raise ValueError("invalid_rate + malformed_rate must not exceed 1")


def producer_security() -> dict[str, str]:
    """The producer principal's login (kafka-python arguments): its password from the
    environment, else from the secrets generated on first run (var/secrets.env)."""
    stored = read_env_file(Settings().var_dir / "secrets.env")
    return kafka_client_security(Settings.resolve(stored), PRODUCER)


@dataclass(frozen=True)
class PublisherSettings:
    """How readings reach Kafka. Defaults come from the producer benchmark on this machine."""

    bootstrap_servers: str = DEFAULT_BOOTSTRAP_SERVERS
    topic: str = DEFAULT_TOPIC
    linger_ms: int = 20
    batch_size: int = 256 * 1024
    # zstd: the best ratio here (about 21x on readings, gzip's level 9 12x) at ~1/60 of gzip's
    # CPU, which kafka-python spends on its sender thread under the same GIL as the sends.
    compression: str | None = "zstd"
    delivery_timeout_ms: int = 120_000
    # send() blocks this long at most when the buffer is full or metadata is missing; kept well
    # below supervisord's stop timeout so a SIGTERM during a broker outage is still honoured.
    max_block_ms: int = 10_000
    client_id: str = "heartbeat-producer"
    # Who the producer is on the broker (heartbeat_contract.kafka_security).
    security: dict[str, str] = field(default_factory=producer_security)

    @classmethod
    def from_env(cls, **overrides: object) -> PublisherSettings:
        """Connection from KAFKA_BOOTSTRAP_SERVERS / KAFKA_TOPIC; keyword arguments win."""
        settings = Settings()
        values: dict[str, object] = {
            "bootstrap_servers": settings.kafka_bootstrap_servers,
            "topic": settings.kafka_topic,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RunSettings:
    """How long and how fast one run goes, and what it reports."""

    rate: float  # readings per second across all customers
    duration: float | None = None  # wall-clock seconds; None with count None = until signalled
    count: int | None = None
    ledger_path: Path | None = None
    progress_interval: float = 5.0
    flush_timeout: float = 15.0  # with max_block_ms, still below supervisord's 30 s stop wait
    workers: int = 1  # producer processes, each with every workers-th customer (workers.py)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
