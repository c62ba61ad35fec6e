"""Create the Kafka topics the product uses, or grow their partitions to the configured count."""

from __future__ import annotations

from kafka.admin import NewPartitions, NewTopic

from .config import StackConfig
from .principals import admin_client


def ensure_topic(config: StackConfig, name: str, partitions: int) -> str:
    """Idempotent: returns 'created', 'grown' or 'exists'. Partitions are never reduced."""
    admin = admin_client(config)
    try:
        if name not in admin.list_topics():
            admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
            return "created"
        (description,) = admin.describe_topics([name])
        current = len(description["partitions"])
        if current < partitions:
            admin.create_partitions({name: NewPartitions(total_count=partitions)})
            return "grown"
        return "exists"
    finally:
        admin.close()
