"""Devices from outside: a real broker with HEARTBEAT_DEVICE_LISTENER set, credentials made by
`heartbeat-ops devices`, and kafka-python clients over SASL_SSL (SCRAM-SHA-512), as a device
would connect. What a device may do (write the readings topic) lands through the real job;
everything else is refused by the broker, which the tests read in the client's error and, for
refused logins, in the broker's own log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import TopicAuthorizationFailedError

from tests.support import device_client, kafka
from tests.support.db import superuser_query
from tests.support.device_broker import (
    ALERTS_TOPIC,
    INVALID_CREDENTIALS,
    READINGS_TOPIC,
    TLS_HANDSHAKE_FAILED,
    DeviceBroker,
    tls_files,
)
from tests.support.kafka import client_args
from tests.support.stream_job import StreamJob, wait_for
from tests.support.world import CUSTOMER_PREFIX

pytestmark = pytest.mark.integration

OPS = str(Path(sys.executable).parent / "heartbeat-ops")
PRODUCER_ARGS = {
    "bootstrap_servers",
    "security_protocol",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
    "ssl_cafile",
}


@pytest.fixture(scope="module")
def broker(world):
    broker = DeviceBroker(world)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


def ops_devices(broker: DeviceBroker, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPS, "devices", *args],
        env={**os.environ, **broker.environment()},
        capture_output=True,
        text=True,
        timeout=120,
    )


def add_device(broker: DeviceBroker) -> dict[str, str]:
    """`devices add NAME --json` for a new name: the KafkaProducer arguments it prints."""
    name = f"device-{uuid.uuid4().hex[:8]}"
    added = ops_devices(broker, "add", name, "--json")
    assert added.returncode == 0, added.stderr
    return json.loads(added.stdout)


def topic_names(servers: str) -> set[str]:
    admin = KafkaAdminClient(**client_args(servers))
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def refused_login(broker: DeviceBroker, config: dict, reason: str) -> None:
    """A client with `config` writes nothing, and the broker logs one more refusal for
    `reason`."""
    before = broker.refusals(reason)
    end = kafka.topic_end(broker.config.kafka_bootstrap_servers, READINGS_TOPIC)
    device_client.login_refused(config, READINGS_TOPIC)
    wait_for(lambda: broker.refusals(reason) > before, 30, f"the broker to log {reason!r}")
    assert kafka.topic_end(broker.config.kafka_bootstrap_servers, READINGS_TOPIC) == end


def test_devices_add_prints_only_kafka_producer_arguments(broker):
    name = f"device-{uuid.uuid4().hex[:8]}"
    added = ops_devices(broker, "add", name, "--json")
    assert added.returncode == 0, added.stderr
    lines = added.stdout.splitlines()
    assert len(lines) == 1
    config = json.loads(lines[0])
    assert set(config) == PRODUCER_ARGS
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["bootstrap_servers"] == broker.config.device_listener
    assert Path(config["ssl_cafile"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert set(tls_files(broker.root).values()) == {0o600}  # CA, broker key pair, keystore

    listed = ops_devices(broker, "list", "--json")
    assert json.loads(listed.stdout)[name] == [READINGS_TOPIC]
    again = ops_devices(broker, "add", name)
    assert again.returncode == 1 and "exists" in again.stderr
    human = ops_devices(broker, "add", f"device-{uuid.uuid4().hex[:8]}")
    assert "sasl.jaas.config=" in human.stdout and "KafkaProducer(" in human.stdout


def test_device_readings_land_exactly_once_through_the_job(broker, world, tmp_path):
    config = add_device(broker)
    customer = f"{CUSTOMER_PREFIX}device-{uuid.uuid4().hex[:6]}"
    sent = device_client.readings(60, customer)
    offsets = sorted(device_client.send(config, READINGS_TOPIC, sent))
    on_topic = kafka.read_to_end(broker.config.kafka_bootstrap_servers, READINGS_TOPIC)
    assert Counter(r.value for r in on_topic if r.key == customer.encode()) == Counter(
        value for _, value in sent
    )

    job = StreamJob(
        broker.config,  # the job reads the device broker on its internal (loopback) listener
        READINGS_TOPIC,
        str(tmp_path / "checkpoint"),
        tmp_path / "job.log",
        HEARTBEAT_VAR_DIR=str(world.config.var_dir),  # jars and venv of the install
    )

    def landed() -> list[tuple]:
        return superuser_query(
            world.config,
            "SELECT kafka_partition, kafka_offset, heart_rate FROM heart_rate_readings"
            " WHERE kafka_topic = %s AND customer_id = %s",
            READINGS_TOPIC,
            customer,
        )

    try:
        job.start()
        wait_for(lambda: len(landed()) >= len(sent), 300, "the job to land the device's readings")
        assert job.process.poll() is None, job.log_tail()
    finally:
        job.stop()
    rows = landed()
    assert sorted((p, o) for p, o, _ in rows) == offsets  # each message once, none extra
    assert Counter(bpm for _, _, bpm in rows) == Counter(60 + i % 50 for i in range(len(sent)))


def test_wrong_password_and_unknown_user_are_refused(broker):
    config = add_device(broker)
    control = device_client.readings(1, f"{CUSTOMER_PREFIX}control")
    device_client.send(config, READINGS_TOPIC, control)  # the right password works
    wrong = {**config, "sasl_plain_password": "not-the-password"}
    refused_login(broker, wrong, INVALID_CREDENTIALS)
    unknown = {**config, "sasl_plain_username": f"nobody-{uuid.uuid4().hex[:6]}"}
    refused_login(broker, unknown, INVALID_CREDENTIALS)


def test_device_may_not_read_readings_write_alerts_create_topics_or_join_groups(broker):
    config = add_device(broker)
    servers = broker.config.kafka_bootstrap_servers
    data = device_client.readings(2, f"{CUSTOMER_PREFIX}acl")
    device_client.send(config, READINGS_TOPIC, data)  # so there is something to read

    device_client.read_refused(config, READINGS_TOPIC)
    alerts_end = kafka.topic_end(servers, ALERTS_TOPIC)
    device_client.write_refused(config, ALERTS_TOPIC)
    assert kafka.topic_end(servers, ALERTS_TOPIC) == alerts_end
    topics_before = topic_names(servers)
    device_client.create_topic_refused(config)
    device_client.group_refused(config, READINGS_TOPIC)
    assert topic_names(servers) == topics_before


def test_revoked_credential_is_refused(broker):
    config = add_device(broker)
    name = config["sasl_plain_username"]
    connected = KafkaProducer(**config, acks="all", **device_client.QUICK)
    try:
        connected.send(READINGS_TOPIC, b"before revoke").get(timeout=30)
        revoked = ops_devices(broker, "revoke", name)
        assert revoked.returncode == 0, revoked.stderr
        assert "3 ACLs removed" in revoked.stdout

        def open_connection_refused() -> bool:
            try:
                connected.send(READINGS_TOPIC, b"after revoke").get(timeout=30)
            except TopicAuthorizationFailedError:
                return True
            return False

        # A connection made before the revoke is refused from the broker's next request on.
        wait_for(open_connection_refused, 30, "the open connection to be refused", poll=0.5)
    finally:
        connected.close(timeout=5)
    refused_login(broker, config, INVALID_CREDENTIALS)
    assert name not in json.loads(ops_devices(broker, "list", "--json").stdout)
    assert ops_devices(broker, "revoke", name).returncode == 1


def test_plaintext_on_the_device_port_is_refused(broker):
    config = add_device(broker)
    plaintext = {"bootstrap_servers": config["bootstrap_servers"], "security_protocol": "PLAINTEXT"}
    refused_login(broker, plaintext, TLS_HANDSHAKE_FAILED)


def test_the_client_probe_compose_test_runs(broker):
    """The same checks, through the entry `make compose-test` runs against compose."""
    config = add_device(broker)
    report = device_client.probe(
        config, READINGS_TOPIC, ALERTS_TOPIC, 5, f"{CUSTOMER_PREFIX}probe-{uuid.uuid4().hex[:6]}"
    )
    assert len(set(report["offsets"])) == 5
    assert set(report["refused"]) == {
        "wrong password", "unknown user", "plaintext", "read readings", "write alerts",
        "create topic", "join group",
    }  # fmt: skip


def test_add_on_a_broker_started_without_the_listener_says_so_and_keeps_nothing(world):
    """The setting changed but Kafka was not restarted: the running broker has no device
    listener, so no credential is made that no device could use."""
    name = f"device-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "HEARTBEAT_DEVICE_LISTENER": "127.0.0.1:9"}  # the world's own broker
    added = subprocess.run(
        [OPS, "devices", "add", name], env=env, capture_output=True, text=True, timeout=120
    )
    assert added.returncode == 1
    assert "restarted after HEARTBEAT_DEVICE_LISTENER" in added.stderr
    admin = KafkaAdminClient(**client_args(world.config.kafka_bootstrap_servers))
    try:
        assert name not in admin.describe_user_scram_credentials()
    finally:
        admin.close()
