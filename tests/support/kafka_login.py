"""How the tests' own Kafka clients log in, and the rights they give the stack's principals on
the topics and groups a test makes for itself (README, "Kafka principals")."""

from __future__ import annotations

import time

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import ACL
from kafka.errors import KafkaError

from heartbeat_contract.kafka_security import ADMIN, JOB, NOTIFIER, Principal, kafka_client_security
from heartbeat_ops import principals
from heartbeat_ops.config import load


def client_args(servers: str) -> dict[str, str]:
    """kafka-python arguments of the tests' own clients: the broker at `servers`, logged in as
    the admin principal: the world's (its fixture exports HEARTBEAT_KAFKA_ADMIN_*), else, for a
    benchmark against the live stack, the one in var/secrets.env."""
    return {"bootstrap_servers": servers, **kafka_client_security(load(), ADMIN)}


def grant_topic(admin: KafkaAdminClient, name: str) -> Principal:
    """The principals' rights on a test's own topic, as on the world's, by its name: an alerts
    topic (the name says "alerts") to the job and notifier, any other as readings to the
    producer and job. A job, producer or notifier given another role for a topic is granted it
    by its own helper (StreamJob, NotifierProcess). Returns the principal that reads it."""
    config = load()  # the principals' names, as client_args finds the admin's
    if "alerts" in name:
        principals.grant(admin, principals.alerts_topic_acls(config, name))
        return NOTIFIER
    principals.grant(admin, principals.readings_topic_acls(config, name))
    return JOB


def grant(servers: str, acls: list[ACL]) -> None:
    admin = KafkaAdminClient(**client_args(servers))
    try:
        principals.grant(admin, acls)
    finally:
        admin.close()


def wait_visible(servers: str, principal: Principal, topic: str, timeout: float = 30) -> None:
    """Until `principal` sees `topic`'s partitions: the broker applies new ACLs shortly after
    CreateAcls answers, and a client that starts before then is refused its first metadata."""
    args = {**kafka_client_security(load(), principal), "bootstrap_servers": servers}
    deadline = time.monotonic() + timeout
    while True:
        consumer = KafkaConsumer(**args, request_timeout_ms=5000)
        try:
            if consumer.partitions_for_topic(topic):
                return
        except KafkaError:
            pass  # not authorized yet
        finally:
            consumer.close()
        if time.monotonic() > deadline:
            raise AssertionError(f"{principal} still cannot see {topic} after {timeout:.0f}s")
        time.sleep(0.2)


def grant_job(servers: str, readings_topic: str, alerts_topic: str) -> None:
    """The job's (and producer's, notifier's) rights on the topics a test job is given."""
    config = load()
    grant(servers, [*principals.readings_topic_acls(config, readings_topic),
                    *principals.alerts_topic_acls(config, alerts_topic)])  # fmt: skip
    wait_visible(servers, JOB, readings_topic)


def grant_notifier(servers: str, alerts_topic: str, group: str, wait: bool = True) -> None:
    """The notifier's rights on a test's own alerts topic and consumer group; unless `wait` is
    false (a topic not made yet), until the notifier's principal sees the topic."""
    config = load()
    grant(servers, [*principals.alerts_topic_acls(config, alerts_topic),
                    principals.notifier_group_acl(config, group)])  # fmt: skip
    if wait:
        wait_visible(servers, NOTIFIER, alerts_topic)
