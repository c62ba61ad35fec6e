"""Who each Kafka client is, built in one place from the settings (README, "Kafka principals").

The broker's internal listener (loopback natively, the compose network in containers) takes
SASL only: the admin principal logs in with PLAIN against a static JAAS user (it must work
before any SCRAM credential exists, and on the KRaft controller listener, which does not
support SCRAM); the job, producer and notifier log in with SCRAM-SHA-512 credentials that
heartbeat-ops creates through the admin principal, each with only its own ACLs.
"""

from __future__ import annotations

from typing import Literal

from .settings import Settings

Principal = Literal["admin", "job", "producer", "notifier"]
ADMIN: Principal = "admin"
JOB: Principal = "job"
PRODUCER: Principal = "producer"
NOTIFIER: Principal = "notifier"
SERVICE_PRINCIPALS: tuple[Principal, ...] = (JOB, PRODUCER, NOTIFIER)

# Spark's Kafka source names its consumers' groups with this prefix (the job's groupIdPrefix);
# offsets live in the job's checkpoint, the groups only have to be allowed.
JOB_GROUP_PREFIX = "heartbeat-job"

INTERNAL_PROTOCOL = "SASL_PLAINTEXT"  # loopback / compose network only: no TLS to terminate
PLAIN = "PLAIN"
SCRAM = "SCRAM-SHA-512"
PLAIN_LOGIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"


def credentials(settings: Settings, principal: Principal) -> tuple[str, str]:
    """(user, password) of `principal` from its HEARTBEAT_KAFKA_<PRINCIPAL>_USER/_PASSWORD."""
    return getattr(settings, f"kafka_{principal}_user"), getattr(
        settings, f"kafka_{principal}_password"
    )


LOGIN_MODULES = {PLAIN: PLAIN_LOGIN, SCRAM: SCRAM_LOGIN}


def mechanism(principal: Principal) -> str:
    return PLAIN if principal == ADMIN else SCRAM


def jaas_config(module: str, user: str, password: str, extra: str = "") -> str:
    """A sasl.jaas.config value; generated secrets are URL-safe, so nothing needs quoting."""
    return f'{module} required username="{user}" password="{password}"{extra};'


def kafka_client_security(settings: Settings, principal: Principal) -> dict[str, str]:
    """kafka-python's keyword arguments (KafkaProducer, KafkaConsumer, KafkaAdminClient) that
    log in as `principal` on the internal listener."""
    user, password = credentials(settings, principal)
    return {
        "security_protocol": INTERNAL_PROTOCOL,
        "sasl_mechanism": mechanism(principal),
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }


# kafka-python reconnects to a broker it lost with a backoff that doubles up to 30 s (Kafka's own
# Java client: 1 s): a producer, the alert outbox or the notifier resumed 11 s after a broker
# restart, where 1 s brings them back 0.7 s after it (measured on the tests' world, the broker
# down 17 s).
RECONNECT_BACKOFF_MAX_MS = 1000


def kafka_client_args(settings: Settings, principal: Principal) -> dict[str, str | int]:
    """kafka_client_security plus where the broker is (KAFKA_BOOTSTRAP_SERVERS) and how soon a
    lost broker is tried again."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
        **kafka_client_security(settings, principal),
    }


def spark_kafka_options(settings: Settings, principal: Principal) -> dict[str, str]:
    """The `kafka.`-prefixed options of Spark's Kafka source and sink for `principal`."""
    user, password = credentials(settings, principal)
    chosen = mechanism(principal)
    return {
        "kafka.bootstrap.servers": settings.kafka_bootstrap_servers,
        "kafka.security.protocol": INTERNAL_PROTOCOL,
        "kafka.sasl.mechanism": chosen,
        "kafka.sasl.jaas.config": jaas_config(LOGIN_MODULES[chosen], user, password),
    }
