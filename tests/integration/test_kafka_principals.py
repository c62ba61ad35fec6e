"""The job's, producer's and notifier's Kafka principals on a real broker (README, "Kafka
principals"): each logs in with its own SCRAM credential and may do what it needs; the broker
refuses the rest, a client without credentials, a wrong password, and SCRAM on the controller
listener. A data folder formatted before principals existed is upgraded with its data."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import uuid
from datetime import UTC, datetime

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    NewTopic,
    ResourcePattern,
    ResourceType,
)
from kafka.errors import KafkaError, TopicAuthorizationFailedError

from heartbeat_contract.alerts import OPEN, TACHYCARDIA, alert_event, encode_event
from heartbeat_contract.kafka_security import JOB, NOTIFIER, PRODUCER, kafka_client_args
from heartbeat_ops import health, principals, topics
from heartbeat_ops.config import StackConfig, var_dir
from heartbeat_ops.nodes import new_cluster_id, prepare_kafka
from heartbeat_ops.programs import kafka_program
from tests.support import device_client
from tests.support.device_client import CLIENT_QUICK
from tests.support.sockets import free_ports
from tests.support.stream_job import wait_for

pytestmark = pytest.mark.integration

TOPIC_REFUSED = "TopicAuthorizationFailedError"


def as_principal(config: StackConfig, principal) -> dict[str, str]:
    return kafka_client_args(config, principal)


def alert_message(customer: str) -> list[tuple[bytes, bytes]]:
    now = datetime.now(UTC)
    event = alert_event(
        customer_id=customer, kind=TACHYCARDIA, status=OPEN, started_at=now,
        last_reading_at=now, extreme_bpm=150, readings=10, threshold_bpm=120.0,
    )  # fmt: skip
    return [encode_event(event)]


def read_all(config: dict, topic: str, group: str | None = None) -> list[bytes]:
    """Every value of `topic` up to its end now, as the client `config` logs in."""
    consumer = KafkaConsumer(**config, group_id=group, enable_auto_commit=False, **CLIENT_QUICK)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = consumer.end_offsets(partitions)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        values: list[bytes] = []

        def at_end() -> bool:
            for batch in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in batch)
            return all(consumer.position(tp) >= ends[tp] for tp in partitions)

        wait_for(at_end, 60, f"reading {topic}", poll=0)
        if group:  # the group's offsets are the notifier's progress: it may commit them
            consumer.commit()
        return values
    finally:
        consumer.close()


def blind_read_refused(config: dict, topic: str) -> str:
    """A principal without even DESCRIBE on `topic`: it gets no record, and asking for the
    topic's offsets is refused; the error's name."""
    consumer = KafkaConsumer(**config, enable_auto_commit=False, **CLIENT_QUICK)
    partitions = [TopicPartition(topic, p) for p in range(3)]
    try:
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        try:
            assert not consumer.poll(timeout_ms=5000), f"read {topic}"
        except TopicAuthorizationFailedError as error:
            return type(error).__name__
        try:
            consumer.end_offsets(partitions)
        except KafkaError as error:
            return type(error).__name__
    finally:
        consumer.close()
    raise device_client.NotRefused(f"asked {topic} for its offsets")


def test_producer_writes_readings_and_nothing_else(stack):
    producer = as_principal(stack, PRODUCER)
    customer = f"T-producer-{uuid.uuid4().hex[:6]}"
    offsets = device_client.send(producer, stack.kafka_topic, device_client.readings(3, customer))
    assert len(offsets) == 3
    assert device_client.read_refused(producer, stack.kafka_topic) == TOPIC_REFUSED
    assert device_client.write_refused(producer, stack.kafka_alerts_topic) == TOPIC_REFUSED
    assert "AuthorizationFailed" in device_client.create_topic_refused(producer)


def test_job_reads_readings_writes_alerts_and_administers_nothing(stack):
    job = as_principal(stack, JOB)
    customer = f"T-job-{uuid.uuid4().hex[:6]}"
    device_client.send(as_principal(stack, PRODUCER), stack.kafka_topic,
                       device_client.readings(2, customer))  # fmt: skip
    assert sum(customer.encode() in value for value in read_all(job, stack.kafka_topic)) == 2
    assert len(device_client.send(job, stack.kafka_alerts_topic, alert_message(customer))) == 1
    assert device_client.write_refused(job, stack.kafka_topic) == TOPIC_REFUSED
    assert "AuthorizationFailed" in device_client.create_topic_refused(job)
    admin = KafkaAdminClient(**job, **CLIENT_QUICK)
    try:  # granting itself the super user's rights
        everything = ResourcePattern(ResourceType.TOPIC, "*", ACLResourcePatternType.LITERAL)
        acl = ACL(f"User:{stack.kafka_job_user}", "*", ACLOperation.ALL,
                  ACLPermissionType.ALLOW, everything)  # fmt: skip
        failed = admin.create_acls([acl])["failed"]
        assert failed and "ClusterAuthorizationFailed" in repr(failed[0])
    finally:
        admin.close()


def test_notifier_reads_alerts_in_its_group_and_nothing_else(stack):
    notifier = as_principal(stack, NOTIFIER)
    customer = f"T-notifier-{uuid.uuid4().hex[:6]}"
    device_client.send(as_principal(stack, JOB), stack.kafka_alerts_topic, alert_message(customer))
    values = read_all(notifier, stack.kafka_alerts_topic, group=stack.notifier_group)
    assert sum(customer.encode() in value for value in values) == 1
    # Not idempotent: an idempotent producer is refused earlier, for want of IDEMPOTENT_WRITE.
    plain_producer = {**notifier, "enable_idempotence": False}
    assert device_client.write_refused(plain_producer, stack.kafka_alerts_topic) == TOPIC_REFUSED
    assert "AuthorizationFailed" in blind_read_refused(notifier, stack.kafka_topic)
    assert "AuthorizationFailed" in device_client.group_refused(notifier, stack.kafka_alerts_topic)


def refusals(world, reason: str) -> int:
    log = (world.root / "log" / "kafka.log").read_text(errors="replace")
    return sum(1 for line in log.splitlines() if "Failed authentication" in line and reason in line)


def test_no_credentials_or_a_wrong_password_is_refused(world, stack):
    producer = as_principal(stack, PRODUCER)
    plaintext = {"bootstrap_servers": stack.kafka_bootstrap_servers}  # was ANONYMOUS, a super user
    assert device_client.login_refused(plaintext, stack.kafka_topic)
    before = refusals(world, "invalid credentials")
    wrong = {**producer, "sasl_plain_password": "not-the-password"}
    assert device_client.login_refused(wrong, stack.kafka_topic)
    unknown = {**producer, "sasl_plain_username": f"nobody-{uuid.uuid4().hex[:6]}"}
    assert device_client.login_refused(unknown, stack.kafka_topic)
    wait_for(lambda: refusals(world, "invalid credentials") >= before + 2, 30,
             "the broker to log both refused logins")  # fmt: skip


def test_the_controller_listener_takes_only_the_admins_plain_login(world, stack):
    controller = f"{stack.kafka_host}:{stack.kafka_controller_port}"
    before = refusals(world, "Unsupported SASL mechanism SCRAM-SHA-512")
    job = {**as_principal(stack, JOB), "bootstrap_servers": controller}
    assert device_client.login_refused(job, stack.kafka_alerts_topic)
    wait_for(lambda: refusals(world, "Unsupported SASL mechanism SCRAM-SHA-512") > before, 30,
             "the controller to refuse a SCRAM login")  # fmt: skip
    plaintext = {"bootstrap_servers": controller}
    assert device_client.login_refused(plaintext, stack.kafka_alerts_topic)


# --- a data folder formatted before principals existed ---------------------------------------

OLD_PROPERTIES = """process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers={host}:{cport}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}
advertised.listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
"""


class OwnBroker:
    """A broker of this test's own under the world's folder (its pid file in the world's run/,
    so a crashed run's broker is killed by the next World.create)."""

    def __init__(self, world) -> None:
        self.world = world
        self.root = world.root / f"upgrade-{uuid.uuid4().hex[:6]}"
        port, cport = free_ports(2)
        self.config: StackConfig = world.config.model_copy(
            update={"kafka_bootstrap_servers": f"localhost:{port}", "kafka_controller_port": cport}
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready) -> None:
        with (self.root / "kafka.log").open("ab") as log:
            self.process = subprocess.Popen(
                kafka_program(self.config, self.root).command,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        (self.world.root / "run" / f"{self.root.name}.pid").write_text(f"{self.process.pid}\n")

        def up() -> bool:
            if self.process.poll() is not None:
                text = (self.root / "kafka.log").read_text(errors="replace")
                raise AssertionError(f"the broker exited:\n{text[-4000:]}")
            return ready()

        wait_for(up, 120, "the upgrade test's broker", poll=0.5)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=60)

    def format_as_before(self) -> None:
        """Storage formatted, and properties written, as heartbeat-ops did before principals."""
        (self.root / "kafka").mkdir(parents=True)
        c = self.config
        properties = self.root / "kafka" / "server.properties"
        properties.write_text(OLD_PROPERTIES.format(
            host=c.kafka_host, port=c.kafka_port, cport=c.kafka_controller_port,
            data=self.root / "data" / "kafka"))  # fmt: skip
        subprocess.run(
            ["java", "-cp", f"{var_dir() / 'jars' / 'kafka'}/*", "kafka.tools.StorageTool",
             "format", "--standalone", "-t", new_cluster_id(), "-c", str(properties)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip


def plaintext_ready(servers: str):
    def ready() -> bool:
        try:
            KafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=3000).close()
        except Exception:
            return False
        return True

    return ready


def test_a_cluster_formatted_before_principals_is_upgraded_with_its_data(world):
    broker = OwnBroker(world)
    servers = broker.config.kafka_bootstrap_servers
    topic = broker.config.kafka_topic
    try:
        broker.format_as_before()
        broker.start(plaintext_ready(servers))
        admin = KafkaAdminClient(bootstrap_servers=servers)
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        admin.close()
        customer = f"T-upgrade-{uuid.uuid4().hex[:6]}"
        plaintext = {"bootstrap_servers": servers}
        assert len(device_client.send(plaintext, topic, device_client.readings(5, customer))) == 5
        broker.stop()

        # What `make up` does on the next start: properties rewritten, storage kept, principals.
        assert prepare_kafka(broker.config, broker.root) is False  # not formatted again
        broker.start(lambda: health.kafka_ready(broker.config))
        assert topics.ensure_topic(broker.config, topic, 3) == "exists"
        principals.ensure_principals(broker.config)

        job = as_principal(broker.config, JOB)
        values = read_all(job, topic)
        assert [json.loads(v)["customer_id"] for v in values] == [customer] * 5
        assert device_client.login_refused(plaintext, topic)  # no longer anonymous
    finally:
        broker.stop()


def test_the_admins_password_is_only_in_the_private_properties_file(world, stack):
    properties = world.root / "kafka" / "server.properties"
    assert stat.S_IMODE(properties.stat().st_mode) == 0o600
    assert stack.kafka_admin_password in properties.read_text()  # the static JAAS user's
    log = (world.root / "log" / "kafka.log").read_text(errors="replace")
    assert "sasl.jaas.config" in log or "KafkaConfig values" in log  # the broker logged its config
    assert stack.kafka_admin_password not in log
