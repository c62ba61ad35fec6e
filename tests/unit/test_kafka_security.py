"""The one place that builds a Kafka client's login, and the ACLs each principal is given.
The broker enforcing them is tested in tests/integration/test_kafka_principals.py."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ACLOperation, ResourceType

from heartbeat_contract import kafka_security
from heartbeat_contract.kafka_security import ADMIN, JOB, NOTIFIER, PRODUCER
from heartbeat_ops import principals
from heartbeat_ops.config import GENERATED_SECRETS, StackConfig

pytestmark = pytest.mark.unit


def config() -> StackConfig:
    passwords = {f"kafka_{p}_password": f"{p}-pw" for p in ("admin", "job", "producer", "notifier")}
    return StackConfig.resolve({}).model_copy(
        update={"kafka_bootstrap_servers": "localhost:9092", **passwords}
    )


def test_services_log_in_with_scram_and_the_admin_with_plain():
    job = kafka_security.kafka_client_args(config(), JOB)
    assert job == {
        "bootstrap_servers": "localhost:9092",
        "reconnect_backoff_max_ms": 1000,  # kafka-python's default, 30 s, outlasts a restart
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "heartbeat-job",
        "sasl_plain_password": "job-pw",
    }
    admin = kafka_security.kafka_client_security(config(), ADMIN)
    assert (admin["sasl_mechanism"], admin["sasl_plain_username"]) == ("PLAIN", "heartbeat-admin")


@pytest.mark.parametrize("client", [KafkaProducer, KafkaConsumer, KafkaAdminClient])
def test_the_arguments_are_kafka_pythons_own(client):
    assert set(kafka_security.kafka_client_args(config(), NOTIFIER)) <= set(client.DEFAULT_CONFIG)


def test_spark_options_carry_the_jobs_scram_login():
    options = kafka_security.spark_kafka_options(config(), JOB)
    assert options["kafka.bootstrap.servers"] == "localhost:9092"
    assert options["kafka.security.protocol"] == "SASL_PLAINTEXT"
    assert options["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    assert options["kafka.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="heartbeat-job" password="job-pw";'
    )


def test_every_principal_password_is_generated_on_first_run():
    for principal in ("ADMIN", "JOB", "PRODUCER", "NOTIFIER"):
        assert f"HEARTBEAT_KAFKA_{principal}_PASSWORD" in GENERATED_SECRETS


def _grants(principal: str) -> set[tuple[ACLOperation, ResourceType, str]]:
    user = kafka_security.credentials(config(), principal)[0]
    return {
        (acl.operation, acl.resource_pattern.resource_type, acl.resource_pattern.resource_name)
        for acl in principals.service_acls(config())
        if acl.principal == f"User:{user}"
    }


def test_each_service_is_granted_only_what_it_needs():
    readings, alerts = "heart-rate-readings", "heart-rate-alerts"
    topic, group, cluster = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER
    assert _grants(PRODUCER) == {
        (ACLOperation.WRITE, topic, readings),
        (ACLOperation.DESCRIBE, topic, readings),
        (ACLOperation.IDEMPOTENT_WRITE, cluster, "kafka-cluster"),
    }
    assert _grants(NOTIFIER) == {
        (ACLOperation.READ, topic, alerts),
        (ACLOperation.DESCRIBE, topic, alerts),
        (ACLOperation.READ, group, "heartbeat-notifier"),
    }
    assert _grants(JOB) == {
        (ACLOperation.READ, topic, readings),
        (ACLOperation.DESCRIBE, topic, readings),
        (ACLOperation.WRITE, topic, alerts),
        (ACLOperation.DESCRIBE, topic, alerts),
        (ACLOperation.IDEMPOTENT_WRITE, cluster, "kafka-cluster"),
        (ACLOperation.READ, group, kafka_security.JOB_GROUP_PREFIX),
    }
    assert _grants(ADMIN) == set()  # the super user needs none


def test_devices_cannot_take_a_principals_name():
    assert principals.principal_names(config()) == {
        "heartbeat-admin",
        "heartbeat-job",
        "heartbeat-producer",
        "heartbeat-notifier",
    }
