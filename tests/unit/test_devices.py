"""The device listener's pure parts: broker properties, names, ACLs, certificate names, the
credential's shape. The broker itself is exercised in tests/integration/test_device_listener.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.admin import ACLOperation, ACLPermissionType, ResourceType
from pydantic import ValidationError

from heartbeat_ops import devices, tls
from heartbeat_ops.config import StackConfig
from heartbeat_ops.container import container_device_config
from heartbeat_ops.database import ConfigurationError
from heartbeat_ops.nodes import kafka_properties
from tests.support.broker_properties import config, properties

pytestmark = pytest.mark.unit


def test_off_by_default_the_broker_has_no_device_port(tmp_path):
    props = properties(kafka_properties(config(), tmp_path))
    assert props["listeners"] == "INTERNAL://localhost:9092,CONTROLLER://localhost:9093"
    assert "DEVICE" not in props["listener.security.protocol.map"]


def test_every_listener_authenticates_and_only_the_admin_is_super_user(tmp_path):
    text = kafka_properties(config(), tmp_path)
    props = properties(text)
    assert props["listener.security.protocol.map"] == (
        "CONTROLLER:SASL_PLAINTEXT,INTERNAL:SASL_PLAINTEXT"
    )
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["super.users"] == "User:heartbeat-admin"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert "ANONYMOUS" not in text
    # The KRaft controller listener supports PLAIN, not SCRAM: only the admin logs in there.
    assert props["listener.name.controller.sasl.enabled.mechanisms"] == "PLAIN"
    assert props["listener.name.internal.sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-512"
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert props["inter.broker.listener.name"] == "INTERNAL"
    jaas = props["listener.name.controller.plain.sasl.jaas.config"]
    assert 'username="heartbeat-admin" password="admin-pw"' in jaas
    assert 'user_heartbeat-admin="admin-pw"' in jaas


def test_the_broker_needs_the_admin_password(tmp_path):
    with pytest.raises(ValueError, match="HEARTBEAT_KAFKA_ADMIN_PASSWORD"):
        kafka_properties(config(kafka_admin_password=""), tmp_path)


def test_device_listener_is_sasl_ssl(tmp_path):
    props = properties(kafka_properties(config(device_listener="0.0.0.0:9094"), tmp_path))
    assert props["listeners"].endswith(",DEVICE://0.0.0.0:9094")
    assert props["listener.security.protocol.map"].endswith(",DEVICE:SASL_SSL")
    assert props["listener.name.device.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.name.device.ssl.keystore.type"] == "PEM"
    assert props["listener.name.device.ssl.keystore.location"] == str(
        tmp_path / "tls" / "broker-keystore.pem"
    )
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["super.users"] == "User:heartbeat-admin"
    # The internal listener stays on loopback, with SASL.
    assert "INTERNAL://localhost:9092" in props["listeners"].split(",")
    assert "INTERNAL:SASL_PLAINTEXT" in props["listener.security.protocol.map"].split(",")


def test_advertised_address_replaces_a_wildcard_host(monkeypatch):
    monkeypatch.setattr("socket.getfqdn", lambda: "gateway.example")
    assert config(device_listener="0.0.0.0:9094").device_address == "gateway.example:9094"
    assert config(device_listener="10.0.0.5:9094").device_address == "10.0.0.5:9094"
    explicit = config(device_listener="0.0.0.0:9094", device_advertised="hb.example.org:443")
    assert explicit.device_address == "hb.example.org:443"
    assert config().device_address == ""


@pytest.mark.parametrize("value", ["9094", "host:", ":9094", "host:port", "host:70000"])
def test_listener_setting_must_be_host_and_port(monkeypatch, value):
    monkeypatch.setenv("HEARTBEAT_DEVICE_LISTENER", value)
    with pytest.raises(ValidationError, match="HOST:PORT"):
        StackConfig.resolve({})


@pytest.mark.parametrize("name", ["ward-3", "gw_1.example", "A"])
def test_plain_device_names_are_accepted(name):
    assert devices.check_name(name) == name


@pytest.mark.parametrize("name", ["ANONYMOUS", "anonymous", "admin", "", "-x", "a b", "a=b", "é"])
def test_reserved_or_unsafe_device_names_are_refused(name):
    with pytest.raises(devices.DeviceError):
        devices.check_name(name)


def test_device_acls_grant_writing_the_readings_topic_only():
    grants = {
        (acl.operation, acl.resource_pattern.resource_type, acl.resource_pattern.resource_name)
        for acl in devices.device_acls("gw1", "readings")
    }
    assert grants == {
        (ACLOperation.WRITE, ResourceType.TOPIC, "readings"),
        (ACLOperation.DESCRIBE, ResourceType.TOPIC, "readings"),
        (ACLOperation.IDEMPOTENT_WRITE, ResourceType.CLUSTER, "kafka-cluster"),
    }
    acls = devices.device_acls("gw1", "readings")
    assert {acl.principal for acl in acls} == {"User:gw1"}
    assert {acl.permission_type for acl in acls} == {ACLPermissionType.ALLOW}


def test_credential_keys_are_kafka_producer_arguments():
    credential = devices.Credential("h:9094", "gw1", "secret", "/ca.pem")
    producer_args = set(KafkaProducer.DEFAULT_CONFIG)
    assert set(credential.producer_args()) <= producer_args


def test_adding_a_device_needs_the_listener():
    with pytest.raises(devices.DeviceError, match="HEARTBEAT_DEVICE_LISTENER"):
        devices.add_device(config(), "gw1")


def test_subject_alt_names_mark_addresses_and_names():
    assert tls.subject_alt_names(["gw.example", "localhost", "127.0.0.1", "localhost"]) == (
        "DNS:gw.example,DNS:localhost,IP:127.0.0.1"
    )
    assert tls.subject_alt_names(["[::1]"]) == "IP:::1"


def _text(cert: Path) -> str:
    return subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-text"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_broker_certificate_is_issued_once_per_name_set_by_a_kept_ca(tmp_path):
    assert tls.ensure_broker_certificate(tmp_path, ["gw.example", "127.0.0.1"])
    ca_before = tls.ca_file(tmp_path).read_text()
    assert not tls.ensure_broker_certificate(tmp_path, ["gw.example", "127.0.0.1"])
    assert tls.ensure_broker_certificate(tmp_path, ["other.example"])
    assert tls.ca_file(tmp_path).read_text() == ca_before
    text = _text(tmp_path / "tls" / "broker.pem")
    assert "DNS:other.example" in text and "gw.example" not in text
    verified = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(tls.ca_file(tmp_path)),
            str(tmp_path / "tls" / "broker.pem"),
        ],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stderr
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "tls").iterdir()}
    assert set(modes.values()) == {0o600}, modes
    assert (tmp_path / "tls").stat().st_mode & 0o777 == 0o700
    keystore = tls.keystore_file(tmp_path).read_text()
    assert keystore.startswith("-----BEGIN " + "PRIVATE KEY-----")  # split: no key marker in git
    assert keystore.count("-----BEGIN CERTIFICATE-----") == 2


def test_in_a_container_the_broker_binds_all_and_advertises_the_published_address():
    inside = container_device_config(config(device_listener="192.0.2.7:19094"))
    assert inside.device_listener == "0.0.0.0:9094"
    assert inside.device_address == "192.0.2.7:19094"
    named = config(device_listener="0.0.0.0:19094", device_advertised="hb.example:19094")
    assert container_device_config(named).device_address == "hb.example:19094"
    with pytest.raises(ConfigurationError, match="HEARTBEAT_DEVICE_ADVERTISED"):
        container_device_config(config(device_listener="0.0.0.0:19094"))
    assert container_device_config(config()).device_listener == ""
