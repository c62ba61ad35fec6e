"""A stack configuration for the broker's unit tests and the properties file read back as a
dict: one copy for the device-listener and the Kafka-cluster tests."""

from __future__ import annotations

from heartbeat_ops.config import StackConfig


def config(**update) -> StackConfig:
    """The default stack on localhost:9092 with a fixed admin password, then `update`."""
    base = StackConfig.resolve({}).model_copy(
        update={"kafka_bootstrap_servers": "localhost:9092", "kafka_admin_password": "admin-pw"}
    )
    return base.model_copy(update=update)


def properties(text: str) -> dict[str, str]:
    """A Java properties text as key -> value, comments left out."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key: value for key, value in pairs if not key.startswith("#")}
