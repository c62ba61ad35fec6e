"""A Kafka cluster's pure parts: each node's properties from the one bootstrap list, the quorum,
the replication settings, the topics' copies and the device addresses per node. Three real
nodes losing one under load: `make compose-test` (docker/compose_check.py broker-loss)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from heartbeat_ops import config as stack_config
from heartbeat_ops import nodes, topics
from heartbeat_ops.config import StackConfig
from tests.support.broker_properties import config, properties

pytestmark = pytest.mark.unit

CLUSTER = "kafka-1:9092,kafka-2:9092,kafka-3:9092"


def test_one_address_keeps_the_standalone_node_every_native_stack_was_formatted_as(tmp_path):
    single = config()
    props = properties(nodes.kafka_properties(single, tmp_path))
    assert props["node.id"] == "1"
    assert props["controller.quorum.bootstrap.servers"] == "localhost:9093"
    assert "controller.quorum.voters" not in props
    assert nodes.format_arguments(single, "id", tmp_path / "p")[:2] == ["format", "--standalone"]
    # One copy, as before: an RF above the broker count would fail every topic.
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["min.insync.replicas"] == "1"


@pytest.mark.parametrize("node_id", [1, 2, 3])
def test_node_n_binds_and_advertises_the_nth_address_and_knows_every_voter(tmp_path, node_id):
    node = config(kafka_bootstrap_servers=CLUSTER, kafka_node_id=node_id)
    props = properties(nodes.kafka_properties(node, tmp_path))
    own = f"kafka-{node_id}"
    assert props["node.id"] == str(node_id)
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == f"INTERNAL://{own}:9092,CONTROLLER://{own}:9093"
    assert props["advertised.listeners"] == props["listeners"]
    assert props["controller.quorum.voters"] == ("1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093")
    assert "controller.quorum.bootstrap.servers" not in props
    # A static quorum's node is formatted without a quorum flag.
    assert "--standalone" not in nodes.format_arguments(node, "id", tmp_path / "p")


def test_a_node_id_beyond_the_list_is_refused_with_both_names(tmp_path):
    with pytest.raises(ValueError, match=r"HEARTBEAT_KAFKA_NODE_ID=4.*KAFKA_BOOTSTRAP_SERVERS"):
        nodes.kafka_properties(config(kafka_bootstrap_servers=CLUSTER, kafka_node_id=4), tmp_path)


@pytest.mark.parametrize(("factor", "in_sync"), [(1, 1), (2, 2), (3, 2), (5, 2)])
def test_internal_topics_get_the_replication_factor_and_two_in_sync_when_possible(
    tmp_path, factor, in_sync
):
    node = config(kafka_bootstrap_servers=CLUSTER, kafka_replication_factor=factor)
    props = properties(nodes.kafka_properties(node, tmp_path))
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == str(factor), key
    for key in (
        "min.insync.replicas",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.min.isr",
    ):
        assert props[key] == str(in_sync), key
    assert props["unclean.leader.election.enable"] == "false"


def test_topics_are_created_with_the_factor_and_their_own_min_insync():
    topic = topics.new_topic(config(kafka_replication_factor=3), "readings", 6)
    assert (topic.name, topic.num_partitions, topic.replication_factor) == ("readings", 6, 3)
    assert topic.topic_configs == {"min.insync.replicas": "2"}
    single = topics.new_topic(config(), "readings", 3)
    assert single.replication_factor == 1 and single.topic_configs == {"min.insync.replicas": "1"}


def test_the_replication_factor_and_node_id_are_positive(monkeypatch):
    monkeypatch.setenv("HEARTBEAT_KAFKA_REPLICATION_FACTOR", "0")
    with pytest.raises(ValidationError, match="HEARTBEAT_KAFKA_REPLICATION_FACTOR"):
        StackConfig.resolve({})
    monkeypatch.delenv("HEARTBEAT_KAFKA_REPLICATION_FACTOR")
    monkeypatch.setenv("HEARTBEAT_KAFKA_NODE_ID", "0")
    with pytest.raises(ValidationError, match="HEARTBEAT_KAFKA_NODE_ID"):
        StackConfig.resolve({})


def test_device_listener_of_node_n_is_the_port_plus_n_minus_one(tmp_path):
    base = dict(kafka_bootstrap_servers=CLUSTER, device_listener="127.0.0.1:29094")
    node2 = config(**base, kafka_node_id=2)
    props = properties(nodes.kafka_properties(node2, tmp_path))
    assert "DEVICE://127.0.0.1:29095" in props["listeners"].split(",")
    assert "DEVICE://127.0.0.1:29095" in props["advertised.listeners"].split(",")
    # Devices get every node: whichever leads their partition, and any one may be down.
    assert node2.device_addresses == "127.0.0.1:29094,127.0.0.1:29095,127.0.0.1:29096"
    named = config(**base, device_advertised="hb.example:443", kafka_node_id=3)
    assert named.device_address == "hb.example:445"
    assert config(kafka_bootstrap_servers=CLUSTER).device_addresses == ""


def test_the_cluster_id_is_generated_once_beside_the_secrets_and_must_be_kafkas(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("HEARTBEAT_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("HEARTBEAT_KAFKA_CLUSTER_ID", raising=False)
    first = stack_config.ensure_secrets()["HEARTBEAT_KAFKA_CLUSTER_ID"]
    assert len(first) == 22 and not first.startswith("-")
    assert stack_config.ensure_secrets()["HEARTBEAT_KAFKA_CLUSTER_ID"] == first  # kept
    assert stack_config.load().kafka_cluster_id == first
    monkeypatch.setenv("HEARTBEAT_KAFKA_CLUSTER_ID", "not-an-id")
    with pytest.raises(ValidationError, match="HEARTBEAT_KAFKA_CLUSTER_ID"):
        stack_config.load()
