"""A device's side of the device listener, with kafka-python only: what `devices add --json`
allows (writing readings) and what the broker must refuse. Shared by the integration test
(tests/integration/test_device_listener.py) and `make compose-test`, which runs this file as a
script in the product's image (kafka-python and heartbeat_contract installed) against the
published device port:

    python device_client.py probe CONFIG.json READINGS_TOPIC ALERTS_TOPIC COUNT CUSTOMER
        writes COUNT readings of CUSTOMER, checks every refusal; prints one JSON object
    python device_client.py refused CONFIG.json READINGS_TOPIC
        checks the credential can no longer log in (after `devices revoke`)
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime, timedelta

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAuthorizationFailedError

from heartbeat_contract import encode_reading  # installed in the product's image too

# A refused login fails in seconds, not kafka-python's default 30 (bootstrap_timeout_ms).
CLIENT_QUICK = {"bootstrap_timeout_ms": 8000, "request_timeout_ms": 8000}  # any client
QUICK = {**CLIENT_QUICK, "max_block_ms": 8000}  # producers


class NotRefused(AssertionError):
    """The broker allowed what a device must not do."""


def readings(count: int, customer: str) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs of the message contract, one a second up to now, 60..109 bpm."""
    now = datetime.now(UTC)
    return [
        encode_reading(customer, now - timedelta(seconds=count - i), 60 + i % 50)
        for i in range(count)
    ]


def send(config: dict, topic: str, messages: list[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
    """KafkaProducer(**config) as a device would use it; each message's (partition, offset)."""
    producer = KafkaProducer(**config, acks="all", **QUICK)
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in messages]
        return [(md.partition, md.offset) for md in (f.get(timeout=30) for f in futures)]
    finally:
        producer.close(timeout=5)


def login_refused(config: dict, topic: str) -> str:
    """Writing one reading with `config` fails; the client's error name."""
    try:
        send(config, topic, readings(1, "refused-login"))
    except KafkaError as error:
        return type(error).__name__
    raise NotRefused(f"{config.get('sasl_plain_username')} wrote to {topic}")


def read_refused(config: dict, topic: str) -> str:
    consumer = KafkaConsumer(**config, enable_auto_commit=False, **CLIENT_QUICK)
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        try:
            consumer.poll(timeout_ms=10000)
        except TopicAuthorizationFailedError as error:
            return type(error).__name__
    finally:
        consumer.close()
    raise NotRefused(f"read {topic}")


def write_refused(config: dict, topic: str) -> str:
    try:
        send(config, topic, [(b"k", b'{"fake": "alert"}')])
    except TopicAuthorizationFailedError as error:
        return type(error).__name__
    raise NotRefused(f"wrote {topic}")


def create_topic_refused(config: dict) -> str:
    admin = KafkaAdminClient(**config, **CLIENT_QUICK)
    try:
        admin.create_topics([NewTopic(f"device-made-{uuid.uuid4().hex[:6]}", 1, 1)])
    except KafkaError as error:
        if "AuthorizationFailed" in type(error).__name__:
            return type(error).__name__
        raise
    finally:
        admin.close()
    raise NotRefused("created a topic")


def group_refused(config: dict, topic: str) -> str:
    consumer = KafkaConsumer(topic, group_id="device-group", **config, **CLIENT_QUICK)
    try:
        consumer.poll(timeout_ms=10000)
    except KafkaError as error:
        if "AuthorizationFailed" in type(error).__name__:
            return type(error).__name__
        raise
    finally:
        consumer.close()
    raise NotRefused("joined a consumer group")


def probe(config: dict, readings_topic: str, alerts_topic: str, count: int, customer: str) -> dict:
    """Everything a device may and may not do, as one report (raises on the first breach)."""
    offsets = send(config, readings_topic, readings(count, customer))
    wrong_password = {**config, "sasl_plain_password": "not-the-password"}
    unknown_user = {**config, "sasl_plain_username": f"nobody-{uuid.uuid4().hex[:6]}"}
    plaintext = {"bootstrap_servers": config["bootstrap_servers"], "security_protocol": "PLAINTEXT"}
    refused = {
        "wrong password": login_refused(wrong_password, readings_topic),
        "unknown user": login_refused(unknown_user, readings_topic),
        "plaintext": login_refused(plaintext, readings_topic),
        "read readings": read_refused(config, readings_topic),
        "write alerts": write_refused(config, alerts_topic),
        "create topic": create_topic_refused(config),
        "join group": group_refused(config, readings_topic),
    }
    return {"offsets": offsets, "refused": refused}


def main(argv: list[str]) -> int:
    mode, config_path, readings_topic, *rest = argv
    with open(config_path) as handle:
        config = json.load(handle)
    if mode == "probe":
        alerts_topic, count, customer = rest
        print(json.dumps(probe(config, readings_topic, alerts_topic, int(count), customer)))
    elif mode == "refused":
        print(json.dumps({"refused": login_refused(config, readings_topic)}))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
