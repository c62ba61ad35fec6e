"""Device credentials for the external listener: a SCRAM-SHA-512 user plus the ACLs that let it
write the readings topic and nothing else (README, "Devices from outside").

Managed through the internal listener as the admin principal, the broker's super user; Kafka keeps
only a salted hash of each password in its metadata, so a password is shown once, at `add`.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ConfigResource,
    ConfigResourceType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from . import tls
from .config import StackConfig
from .principals import admin_client, principal_names

MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Principals the broker trusts or reserves: a device must never be able to log in as one.
RESERVED_NAMES = frozenset({"anonymous", "admin"})


class DeviceError(RuntimeError):
    """A device command that cannot be done as asked; the message says why."""


@dataclass(frozen=True)
class Credential:
    """What a device needs: kafka-python KafkaProducer's own keyword arguments."""

    bootstrap_servers: str
    sasl_plain_username: str
    sasl_plain_password: str
    ssl_cafile: str
    security_protocol: str = "SASL_SSL"
    sasl_mechanism: str = MECHANISM

    def producer_args(self) -> dict[str, str]:
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_plain_username,
            "sasl_plain_password": self.sasl_plain_password,
            "ssl_cafile": self.ssl_cafile,
        }


def check_name(name: str) -> str:
    """Device names are SCRAM user names: plain characters only, none a reserved principal."""
    if not NAME_PATTERN.fullmatch(name):
        raise DeviceError(
            f"device name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if name.lower() in RESERVED_NAMES:
        raise DeviceError(f"device name {name!r} is reserved")
    return name


def device_acls(name: str, readings_topic: str) -> list[ACL]:
    """Write (and describe) the readings topic, idempotently; nothing else is granted, so
    reading any topic, writing alerts, creating topics and using groups are all refused."""
    principal = f"User:{name}"
    topic = ResourcePattern(ResourceType.TOPIC, readings_topic, ACLResourcePatternType.LITERAL)
    cluster = ResourcePattern(ResourceType.CLUSTER, "kafka-cluster", ACLResourcePatternType.LITERAL)
    grants = [
        (ACLOperation.WRITE, topic),
        (ACLOperation.DESCRIBE, topic),
        (ACLOperation.IDEMPOTENT_WRITE, cluster),
    ]
    return [
        ACL(principal, "*", operation, ACLPermissionType.ALLOW, resource)
        for operation, resource in grants
    ]


def require_listener(config: StackConfig) -> None:
    if not config.device_listener:
        raise DeviceError(
            "the device listener is off: set HEARTBEAT_DEVICE_LISTENER=HOST:PORT and restart "
            "Kafka (`make down && make up`) first"
        )


def _admin(config: StackConfig) -> KafkaAdminClient:
    return admin_client(config, request_timeout_ms=15000)


def _require_running_listener(admin: KafkaAdminClient) -> None:
    """Every running broker must have the DEVICE listener, not just be configured for it: a
    credential no device could use is not created, and a device writes to every partition's
    leader, whichever node that is."""
    for broker in admin.describe_cluster()["brokers"]:
        broker_id = str(broker["broker_id"])
        resource = ConfigResource(ConfigResourceType.BROKER, broker_id, None)
        configs = admin.describe_configs([resource], config_filter="all")["broker"][broker_id]
        if "DEVICE://" not in (configs.get("listeners", {}).get("value") or ""):
            raise DeviceError(
                f"running broker {broker_id} has no device listener; was Kafka restarted after "
                "HEARTBEAT_DEVICE_LISTENER was set (`make down && make up`)?"
            )


def _check_not_principal(config: StackConfig, name: str) -> None:
    if name in principal_names(config):
        raise DeviceError(f"device name {name!r} is reserved (one of the stack's own principals)")


def list_devices(config: StackConfig) -> dict[str, list[str]]:
    """Device name -> the topics it may write, for every SCRAM user the broker knows."""
    require_listener(config)  # without it the broker has no authorizer to ask
    admin = _admin(config)
    try:
        users = admin.describe_user_scram_credentials()
        everything = ACLFilter(
            principal=None,
            host=None,
            operation=ACLOperation.WRITE,
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePatternFilter(
                ResourceType.TOPIC, None, ACLResourcePatternType.ANY
            ),
        )
        acls, _ = admin.describe_acls(everything)
    finally:
        admin.close()
    own = principal_names(config)  # the job, producer and notifier are not devices
    topics: dict[str, list[str]] = {name: [] for name in users if name not in own}
    for acl in acls:
        name = acl.principal.removeprefix("User:")
        if name in topics:
            topics[name].append(acl.resource_pattern.resource_name)
    return {name: sorted(written) for name, written in sorted(topics.items())}


def add_device(config: StackConfig, name: str) -> Credential:
    """Create the device's SCRAM credential and ACLs; refuses a name that already exists."""
    require_listener(config)
    check_name(name)
    _check_not_principal(config, name)
    password = secrets.token_urlsafe(32)
    admin = _admin(config)
    try:
        _require_running_listener(admin)
        if admin.describe_user_scram_credentials().get(name):
            raise DeviceError(f"device {name!r} exists; `devices revoke {name}` first")
        upsert = UserScramCredentialUpsertion(
            name, ScramMechanism.SCRAM_SHA_512, password, iterations=SCRAM_ITERATIONS
        )
        error = admin.alter_user_scram_credentials([upsert]).get(name)
        if error:
            raise DeviceError(f"the broker refused the credential of {name!r}: {error}")
        result = admin.create_acls(device_acls(name, config.kafka_topic))
        if result["failed"]:  # e.g. a broker started before the listener was configured
            deletion = UserScramCredentialDeletion(name, ScramMechanism.SCRAM_SHA_512)
            admin.alter_user_scram_credentials([deletion])
            raise DeviceError(
                f"the broker refused the ACLs of {name!r} ({result['failed']}); was Kafka "
                "restarted after HEARTBEAT_DEVICE_LISTENER was set (`make down && make up`)?"
            )
    finally:
        admin.close()
    return Credential(
        bootstrap_servers=config.device_addresses,  # every node's: any one may be down
        sasl_plain_username=name,
        sasl_plain_password=password,
        ssl_cafile=str(tls.ca_file(config.var_dir)),
    )


def revoke_device(config: StackConfig, name: str) -> int:
    """Delete the device's credential (no new logins) and every ACL of its principal (its open
    connections are refused from the next request); returns the ACLs removed."""
    require_listener(config)
    check_name(name)
    _check_not_principal(config, name)
    admin = _admin(config)
    try:
        if not admin.describe_user_scram_credentials().get(name):
            raise DeviceError(f"no device {name!r}")
        deletion = UserScramCredentialDeletion(name, ScramMechanism.SCRAM_SHA_512)
        error = admin.alter_user_scram_credentials([deletion]).get(name)
        if error:
            raise DeviceError(f"the broker refused to delete {name!r}: {error}")
        everything = ACLFilter(
            principal=f"User:{name}",
            host=None,
            operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(
                ResourceType.ANY, None, ACLResourcePatternType.ANY
            ),
        )
        ((_, removed, _),) = admin.delete_acls([everything])
    finally:
        admin.close()
    return len(removed)
