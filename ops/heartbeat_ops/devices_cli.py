"""`heartbeat-ops devices add|list|revoke`: credentials for devices on the external listener."""

from __future__ import annotations

import argparse
import json
import sys

from . import devices, tls
from .config import load


def client_properties(credential: devices.Credential) -> str:
    """The same credential as Java / librdkafka client properties."""
    return "\n".join(
        [
            f"bootstrap.servers={credential.bootstrap_servers}",
            f"security.protocol={credential.security_protocol}",
            f"sasl.mechanism={credential.sasl_mechanism}",
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{credential.sasl_plain_username}" '
            f'password="{credential.sasl_plain_password}";',
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={credential.ssl_cafile}",
        ]
    )


def kafka_python_snippet(credential: devices.Credential, topic: str) -> str:
    """A producer that sends one reading of the message contract (README, "The message
    contract")."""
    arguments = ",\n".join(
        f"    {key}={value!r}" for key, value in credential.producer_args().items()
    )
    return (
        "import json\nfrom datetime import datetime, timezone\n\n"
        "from kafka import KafkaProducer\n\n"
        f"producer = KafkaProducer(\n{arguments},\n    acks='all',\n)\n"
        "now = datetime.now(timezone.utc).isoformat(timespec='milliseconds')\n"
        "reading = {'customer_id': 'C0042', 'timestamp': now, 'heart_rate': 72}\n"
        f"producer.send({topic!r}, key=b'C0042', value=json.dumps(reading).encode())\n"
        "producer.flush()\n"
    )


def cmd_add(args: argparse.Namespace) -> int:
    config = load()
    credential = devices.add_device(config, args.name)
    if args.json:
        print(json.dumps(credential.producer_args()))
        return 0
    print(
        f"device {args.name}: credential created ({credential.sasl_mechanism}); it may write "
        f"{config.kafka_topic} and nothing else. The password is shown only now.\n\n"
        f"Copy the CA certificate {credential.ssl_cafile} to the device (ssl_cafile below).\n\n"
        "# client properties (Java, librdkafka)\n"
        f"{client_properties(credential)}\n\n"
        "# kafka-python\n"
        f"{kafka_python_snippet(credential, config.kafka_topic)}"
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    known = devices.list_devices(load())
    if args.json:
        print(json.dumps(known))
        return 0
    if not known:
        print("no devices")
    for name, topics in known.items():
        print(f"{name:<32}writes {', '.join(topics) or '(nothing)'}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    removed = devices.revoke_device(load(), args.name)
    print(f"device {args.name}: credential deleted, {removed} ACLs removed")
    return 0


def cmd_ca(_: argparse.Namespace) -> int:
    """The CA certificate devices trust, for copying out of a container (it is public)."""
    config = load()
    devices.require_listener(config)
    path = tls.ca_file(config.var_dir)
    if not path.exists():
        raise devices.DeviceError(f"no CA yet at {path}: start Kafka with the listener on first")
    print(path.read_text(), end="")
    return 0


def _failing_cleanly(func):
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except devices.DeviceError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1

    return run


def add_commands(sub) -> None:
    parser = sub.add_parser("devices", help="credentials for devices on the external listener")
    commands = parser.add_subparsers(dest="devices_command", required=True)
    add = commands.add_parser("add", help="create a device credential; prints its client config")
    add.add_argument("name", help="the device's user name (letters, digits, '.', '_', '-')")
    add.add_argument(
        "--json",
        action="store_true",
        help="print only one JSON object of KafkaProducer arguments (KafkaProducer(**config))",
    )
    add.set_defaults(func=_failing_cleanly(cmd_add))
    listing = commands.add_parser("list", help="each device and the topics it may write")
    listing.add_argument("--json", action="store_true", help="one JSON object: name -> topics")
    listing.set_defaults(func=_failing_cleanly(cmd_list))
    revoke = commands.add_parser("revoke", help="delete a device's credential and its ACLs")
    revoke.add_argument("name")
    revoke.set_defaults(func=_failing_cleanly(cmd_revoke))
    ca = commands.add_parser("ca", help="print the CA certificate devices trust (ssl_cafile)")
    ca.set_defaults(func=_failing_cleanly(cmd_ca))
