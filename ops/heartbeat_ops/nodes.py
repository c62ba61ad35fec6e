"""One-time preparation of the data folders: initdb for PostgreSQL, storage format for Kafka."""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
from pathlib import Path

from heartbeat_contract import kafka_security

from . import replica, tls
from .config import StackConfig, new_cluster_id, var_dir, write_private
from .programs import postgres_bin_dir, postgres_os_user


def _chown_to(path: Path, user: str | None) -> None:
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _as_user(user: str | None, command: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *command] if user else command


def prepare_postgres(
    config: StackConfig,
    var: Path,
    replication_sources: tuple[str, ...] = replica.LOOPBACK_SOURCES,
) -> bool:
    """initdb a private cluster under `var`/data/postgres once; True if it was created now.
    Every time: pg_hba takes replication connections from the replication role only, from
    `replication_sources` (the read replica's; README, "Read replica").

    `var` is the stack's var directory (var_dir()); the tests pass their own world's.
    """
    data = var / "data" / "postgres"
    created = _initdb(config, data, var)
    replica.restrict_replication_hba(
        data / "pg_hba.conf", config.replication_user, replication_sources
    )
    return created


def _initdb(config: StackConfig, data: Path, var: Path) -> bool:
    socket_dir = var / "run" / "postgresql"
    user = postgres_os_user()
    socket_dir.mkdir(parents=True, exist_ok=True)
    _chown_to(socket_dir, user)
    if (data / "PG_VERSION").exists():
        return False
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o700)
    _chown_to(data, user)
    with tempfile.NamedTemporaryFile("w", dir=var, delete=False) as pwfile:
        pwfile.write(config.pg_superuser_password + "\n")
    try:
        _chown_to(Path(pwfile.name), user)
        subprocess.run(
            _as_user(
                user,
                [
                    str(postgres_bin_dir() / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    config.pg_superuser,
                    f"--pwfile={pwfile.name}",
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
            ),
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(pwfile.name)
    return True


def security_properties(config: StackConfig) -> list[str]:
    """Every listener authenticates (README, "Kafka principals"). INTERNAL (loopback natively,
    the compose network in containers) takes SCRAM-SHA-512 for the job, producer and notifier
    and PLAIN for the admin; CONTROLLER takes PLAIN only (a KRaft controller listener supports
    no SCRAM). The admin is a static JAAS user, so it logs in before any SCRAM credential
    exists (a new or an upgraded cluster) and is the broker's own identity towards the
    controller and itself; it is the only super user. Nobody else gets anything without an ACL."""
    admin_user, admin_password = kafka_security.credentials(config, kafka_security.ADMIN)
    if not admin_password:
        raise ValueError("HEARTBEAT_KAFKA_ADMIN_PASSWORD is empty: run `heartbeat-ops init` first")
    plain = kafka_security.jaas_config(
        kafka_security.PLAIN_LOGIN,
        admin_user,
        admin_password,
        extra=f' user_{admin_user}="{admin_password}"',
    )
    return [
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        f"super.users=User:{admin_user}",
        "allow.everyone.if.no.acl.found=false",
        "sasl.mechanism.controller.protocol=PLAIN",
        "sasl.mechanism.inter.broker.protocol=PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        f"listener.name.controller.plain.sasl.jaas.config={plain}",
        "listener.name.internal.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512",
        f"listener.name.internal.plain.sasl.jaas.config={plain}",
        "listener.name.internal.scram-sha-512.sasl.jaas.config="
        f"{kafka_security.SCRAM_LOGIN} required;",
    ]


def device_listener_properties(config: StackConfig, var: Path) -> list[str]:
    """The DEVICE listener (README, "Devices from outside"): SASL_SSL with SCRAM-SHA-512 and
    the broker's PEM keystore. Devices get only their ACLs (devices.py)."""
    return [
        "listener.name.device.sasl.enabled.mechanisms=SCRAM-SHA-512",
        "listener.name.device.scram-sha-512.sasl.jaas.config="
        f"{kafka_security.SCRAM_LOGIN} required;",
        "listener.name.device.ssl.keystore.type=PEM",
        f"listener.name.device.ssl.keystore.location={tls.keystore_file(var)}",
        "listener.name.device.ssl.client.auth=none",
        "listener.name.device.ssl.enabled.protocols=TLSv1.3,TLSv1.2",
        # A revoked device's open connection must log in again within a minute (and fails).
        "listener.name.device.connections.max.reauth.ms=60000",
    ]


def quorum_voters(config: StackConfig) -> str:
    """controller.quorum.voters of a cluster: every node is a voter, at its own host on
    KAFKA_CONTROLLER_PORT (`id@host:port`, comma-separated)."""
    return ",".join(
        f"{node_id}@{host}:{config.kafka_controller_port}"
        for node_id, (host, _) in enumerate(config.kafka_nodes, start=1)
    )


def quorum_properties(config: StackConfig) -> list[str]:
    """One node: a standalone KRaft quorum, as every native stack was formatted. Several: a
    static quorum of all of them. Every node is a broker and a controller (combined mode): on
    one machine, three more controller JVMs would cost memory and buy no independence."""
    if len(config.kafka_nodes) == 1:
        address = f"{config.kafka_host}:{config.kafka_controller_port}"
        return [f"controller.quorum.bootstrap.servers={address}"]
    return [f"controller.quorum.voters={quorum_voters(config)}"]


def replication_properties(config: StackConfig) -> list[str]:
    """Copies of Kafka's internal topics (offsets, transactions, share groups) and the
    defaults of new topics: HEARTBEAT_KAFKA_REPLICATION_FACTOR copies, min(2, it) in sync."""
    factor, in_sync = config.kafka_replication_factor, config.kafka_min_insync_replicas
    return [
        f"default.replication.factor={factor}",
        f"min.insync.replicas={in_sync}",
        f"offsets.topic.replication.factor={factor}",
        f"transaction.state.log.replication.factor={factor}",
        f"transaction.state.log.min.isr={in_sync}",
        f"share.coordinator.state.topic.replication.factor={factor}",
        f"share.coordinator.state.topic.min.isr={in_sync}",
        # An out-of-sync replica never becomes leader: it would drop acknowledged readings.
        "unclean.leader.election.enable=false",
    ]


def kafka_properties(config: StackConfig, var: Path) -> str:
    """Node HEARTBEAT_KAFKA_NODE_ID, a combined broker+controller bound to its own address of
    KAFKA_BOOTSTRAP_SERVERS, keeping its log under `var`/data/kafka; plus the device listener
    when it is configured."""
    host, port, cport = config.kafka_host, config.kafka_port, config.kafka_controller_port
    listeners = [f"INTERNAL://{host}:{port}", f"CONTROLLER://{host}:{cport}"]
    advertised = list(listeners)
    protocols = "CONTROLLER:SASL_PLAINTEXT,INTERNAL:SASL_PLAINTEXT"
    device: list[str] = []
    if config.device_listener:
        listeners.append(f"DEVICE://{config.device_bind_address}")
        advertised.append(f"DEVICE://{config.device_address}")
        protocols += ",DEVICE:SASL_SSL"
        device = device_listener_properties(config, var)
    return "\n".join(
        [
            "# Generated by heartbeat-ops from the environment; edit ops/heartbeat_ops/nodes.py.",
            "process.roles=broker,controller",
            f"node.id={config.kafka_node_id}",
            *quorum_properties(config),
            f"listeners={','.join(listeners)}",
            f"advertised.listeners={','.join(advertised)}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=INTERNAL",
            f"listener.security.protocol.map={protocols}",
            *security_properties(config),
            *device,
            f"log.dirs={var / 'data' / 'kafka'}",
            f"num.partitions={config.kafka_partitions}",
            "auto.create.topics.enable=false",
            *replication_properties(config),
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=168",
            "",
        ]
    )


def format_arguments(config: StackConfig, cluster_id: str, properties: Path) -> list[str]:
    """StorageTool's arguments: a single node formats a standalone quorum; a node of a static
    quorum (controller.quorum.voters) takes no quorum flag."""
    standalone = ["--standalone"] if len(config.kafka_nodes) == 1 else []
    return ["format", *standalone, "-t", cluster_id, "-c", str(properties)]


def prepare_kafka(config: StackConfig, var: Path) -> bool:
    """Write `var`/kafka/server.properties every start; format storage once. True if formatted
    now. The broker's jars are the install's (var_dir()), whatever `var` holds the data."""
    conf_dir = var / "kafka"
    conf_dir.mkdir(parents=True, exist_ok=True)
    properties = conf_dir / "server.properties"
    if config.device_listener:
        device_host = config.device_address.rpartition(":")[0]
        tls.ensure_broker_certificate(var, [device_host, "localhost", "127.0.0.1"])
    write_private(properties, kafka_properties(config, var))  # the admin's password is in it
    if (var / "data" / "kafka" / "meta.properties").exists():
        return False
    cluster_id = config.kafka_cluster_id or new_cluster_id()
    subprocess.run(
        [
            "java",
            "-cp",
            f"{var_dir() / 'jars' / 'kafka'}/*",
            "-Dlog4j2.configurationFile="
            + str(Path(__file__).parents[1] / "kafka" / "log4j2.properties"),
            "kafka.tools.StorageTool",
            *format_arguments(config, cluster_id, properties),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return True
