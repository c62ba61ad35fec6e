"""The job's, producer's and notifier's Kafka principals: their SCRAM credentials and the ACLs
that give each only what it needs (README, "Kafka principals").

Applied by `heartbeat-ops init` (so by every `make up`) through the admin principal, which
logs in with PLAIN against the broker's static JAAS user: a cluster formatted before the
principals existed gets them on its next start, with its data as it was. Upserting a
credential and creating an existing ACL are no-ops for Kafka, so applying twice is harmless;
a changed password in var/secrets.env replaces the stored one.
"""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from heartbeat_contract import kafka_security
from heartbeat_contract.kafka_security import JOB, JOB_GROUP_PREFIX, NOTIFIER, PRODUCER, Principal

from .config import StackConfig

SCRAM_ITERATIONS = 8192


class PrincipalError(RuntimeError):
    """The broker refused a credential or an ACL; the message says which."""


def admin_client(config: StackConfig, **options: object) -> KafkaAdminClient:
    """A Kafka admin client logged in as the admin principal (the broker's super user)."""
    return KafkaAdminClient(
        **kafka_security.kafka_client_args(config, kafka_security.ADMIN), **options
    )


def principal_names(config: StackConfig) -> set[str]:
    """Every user name the stack's own clients log in with; devices may not take one."""
    return {
        kafka_security.credentials(config, principal)[0]
        for principal in (kafka_security.ADMIN, *kafka_security.SERVICE_PRINCIPALS)
    }


def _allow(config: StackConfig, principal: Principal, operation, resource) -> ACL:
    user, _ = kafka_security.credentials(config, principal)
    return ACL(f"User:{user}", "*", operation, ACLPermissionType.ALLOW, resource)


def _topic(name: str) -> ResourcePattern:
    return ResourcePattern(ResourceType.TOPIC, name, ACLResourcePatternType.LITERAL)


def _topic_acls(config: StackConfig, topic: str, writer: Principal, reader: Principal) -> list[ACL]:
    """`writer` writes `topic`, `reader` reads it, both may describe it; nobody else."""
    pattern = _topic(topic)
    return [
        _allow(config, writer, ACLOperation.WRITE, pattern),
        _allow(config, writer, ACLOperation.DESCRIBE, pattern),
        _allow(config, reader, ACLOperation.READ, pattern),
        _allow(config, reader, ACLOperation.DESCRIBE, pattern),
    ]


def readings_topic_acls(config: StackConfig, topic: str) -> list[ACL]:
    """The producer writes the readings topic, the job reads it."""
    return _topic_acls(config, topic, writer=PRODUCER, reader=JOB)


def alerts_topic_acls(config: StackConfig, topic: str) -> list[ACL]:
    """The job writes the alerts topic (its outbox), the notifier reads it."""
    return _topic_acls(config, topic, writer=JOB, reader=NOTIFIER)


def notifier_group_acl(config: StackConfig, group: str) -> ACL:
    """The notifier's consumer group (HEARTBEAT_NOTIFIER_GROUP): its offsets are its progress."""
    pattern = ResourcePattern(ResourceType.GROUP, group, ACLResourcePatternType.LITERAL)
    return _allow(config, NOTIFIER, ACLOperation.READ, pattern)


def service_acls(config: StackConfig) -> list[ACL]:
    """The topics of the settings, plus idempotent writes and each reader's consumer groups."""
    cluster = ResourcePattern(ResourceType.CLUSTER, "kafka-cluster", ACLResourcePatternType.LITERAL)
    job_groups = ResourcePattern(
        ResourceType.GROUP, JOB_GROUP_PREFIX, ACLResourcePatternType.PREFIXED
    )
    return [
        *readings_topic_acls(config, config.kafka_topic),
        *alerts_topic_acls(config, config.kafka_alerts_topic),
        _allow(config, PRODUCER, ACLOperation.IDEMPOTENT_WRITE, cluster),
        _allow(config, JOB, ACLOperation.IDEMPOTENT_WRITE, cluster),
        _allow(config, JOB, ACLOperation.READ, job_groups),
        notifier_group_acl(config, config.notifier_group),
    ]


def grant(admin: KafkaAdminClient, acls: list[ACL]) -> None:
    result = admin.create_acls(acls)
    if result["failed"]:
        raise PrincipalError(f"the broker refused ACLs: {result['failed']}")


def ensure_principals(config: StackConfig) -> list[str]:
    """Create or update the service principals' credentials and grant their ACLs; returns the
    user names. Raises PrincipalError if the broker refuses one."""
    upserts = []
    for principal in kafka_security.SERVICE_PRINCIPALS:
        user, password = kafka_security.credentials(config, principal)
        if not password:
            raise PrincipalError(f"no password for Kafka user {user}: run `heartbeat-ops init`")
        upserts.append(
            UserScramCredentialUpsertion(
                user, ScramMechanism.SCRAM_SHA_512, password, iterations=SCRAM_ITERATIONS
            )
        )
    admin = admin_client(config, request_timeout_ms=15000)
    try:
        errors = {user: e for user, e in admin.alter_user_scram_credentials(upserts).items() if e}
        if errors:
            raise PrincipalError(f"the broker refused credentials: {errors}")
        grant(admin, service_acls(config))
    finally:
        admin.close()
    return [upsert.user for upsert in upserts]
