"""Create the Kafka topics the product uses, or grow their partitions to the configured count."""

from __future__ import annotations

from kafka.admin import NewPartitions, NewTopic

from .config import StackConfig
from .principals import admin_client


def new_topic(config: StackConfig, name: str, partitions: int) -> NewTopic:
    """A topic with HEARTBEAT_KAFKA_REPLICATION_FACTOR copies of each partition, of which
    min(2, that) must hold a write before it is acknowledged (acks=all)."""
    return NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=config.kafka_replication_factor,
        topic_configs={"min.insync.replicas": str(config.kafka_min_insync_replicas)},
    )


def ensure_topic(config: StackConfig, name: str, partitions: int) -> str:
    """Idempotent: returns 'created', 'grown' or 'exists'. Partitions are never reduced, and
    an existing topic keeps its replication (reassigning replicas is an operator's move)."""
    admin = admin_client(config)
    try:
        if name not in admin.list_topics():
            admin.create_topics([new_topic(config, name, partitions)])
            return "created"
        (description,) = admin.describe_topics([name])
        current = len(description["partitions"])
        if current < partitions:
            admin.create_partitions({name: NewPartitions(total_count=partitions)})
            return "grown"
        return "exists"
    finally:
        admin.close()
