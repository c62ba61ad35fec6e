"""ops/with-secrets.sh, the containers' entrypoint (and Superset's start natively), run for real:
a program holds the secrets HEARTBEAT_SECRETS names for it and no other, from the secrets file
or from the environment alike. (That each compose service names its own: test_compose.py.)"""

from __future__ import annotations

import configparser
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from heartbeat_ops.config import GENERATED_SECRETS, ROOT, load
from heartbeat_ops.programs import all_programs, render_supervisord_conf
from tests.support import held_secrets

pytestmark = pytest.mark.unit

SCRIPT = ROOT / "ops" / "with-secrets.sh"
FILE = {
    "POSTGRES_PASSWORD": "superuser-pw",
    "HEARTBEAT_KAFKA_ADMIN_PASSWORD": "admin-pw",
    "HEARTBEAT_KAFKA_PRODUCER_PASSWORD": "producer-pw",
    "HEARTBEAT_NOTIFIER_TOKEN": "ack-token",
    "HEARTBEAT_KAFKA_CLUSTER_ID": "cluster-id",  # generated beside them, not a secret
}
SHOWN = "import json, os; print(json.dumps(dict(os.environ)))"
# Every secret a program could inherit: the generated ones and the operator's SMTP password.
EVERY_SECRET = {name: "value" for name in (*GENERATED_SECRETS, "HEARTBEAT_SMTP_PASSWORD")}


def run(tmp_path: Path, file: dict[str, str], **environment: str) -> dict[str, str]:
    """The environment the wrapped program starts with."""
    (tmp_path / "secrets.env").write_text("".join(f"{k}={v}\n" for k, v in file.items()))
    base = {"PATH": os.environ["PATH"], "HEARTBEAT_VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        ["sh", str(SCRIPT), sys.executable, "-c", SHOWN],
        env={**base, **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def test_a_program_holds_only_the_secrets_named_for_it(tmp_path):
    seen = run(
        tmp_path,
        FILE,
        HEARTBEAT_SECRETS="HEARTBEAT_KAFKA_PRODUCER_PASSWORD",
        SUPERSET_SECRET_KEY="from-the-shell",  # a secret set in the environment is withheld too
        PGPASSWORD="libpq-pw",
        HEARTBEAT_APP_PASSWORD="",  # compose passes unset secrets as empty values
    )
    assert seen["HEARTBEAT_KAFKA_PRODUCER_PASSWORD"] == "producer-pw"
    assert seen["HEARTBEAT_KAFKA_CLUSTER_ID"] == "cluster-id"
    withheld = {"POSTGRES_PASSWORD", "HEARTBEAT_KAFKA_ADMIN_PASSWORD", "HEARTBEAT_NOTIFIER_TOKEN",
                "SUPERSET_SECRET_KEY", "PGPASSWORD", "HEARTBEAT_APP_PASSWORD"}  # fmt: skip
    assert withheld & set(seen) == set()


def test_without_a_list_every_secret_is_exported_and_the_environment_wins(tmp_path):
    """The root services that generate and provision the secrets (postgres, init) hold them all."""
    seen = run(tmp_path, FILE, POSTGRES_PASSWORD="set-by-the-operator")
    assert {k: seen[k] for k in FILE} == {**FILE, "POSTGRES_PASSWORD": "set-by-the-operator"}


def test_every_generated_secret_is_known_as_a_secret(tmp_path):
    """A new generated secret cannot slip past the rule by its name."""
    seen = run(tmp_path, EVERY_SECRET, HEARTBEAT_SECRETS="")
    assert set(EVERY_SECRET) & set(seen) == set()


def _environment_pairs(value: str) -> dict[str, str]:
    """supervisord's `environment=` value: KEY="value" pairs split on the commas between them,
    not on a comma inside a quoted value."""
    lexer = shlex.shlex(value, posix=True)
    lexer.whitespace, lexer.whitespace_split = ",", True
    return dict(pair.split("=", 1) for pair in lexer)


def test_supervisord_environment_values_may_hold_commas():
    assert _environment_pairs('A="x,y",B="z"') == {"A": "x,y", "B": "z"}


def _supervised_sections(conf: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Per program of a rendered supervisord.conf: its command and its own environment."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(conf)
    sections = {}
    for section in parser.sections():
        if section.startswith("program:"):
            environment = _environment_pairs(parser[section].get("environment", ""))
            sections[section.removeprefix("program:")] = (
                shlex.split(parser[section]["command"]),
                environment,
            )
    return sections


def test_natively_each_program_holds_only_its_own_secrets(tmp_path):
    """The supervisord.conf `make up` writes, its command lines run for real with the program
    itself replaced by one that shows its environment: supervisord hands every program the
    stack's whole environment (every secret), and each keeps only its own, as in compose."""
    config = load({name: f"{name.lower()}-value" for name in GENERATED_SECRETS})
    programs = all_programs(config)
    sections = _supervised_sections(render_supervisord_conf(config, programs))
    inherited = {
        "PATH": os.environ["PATH"],
        **config.environment(),
        **EVERY_SECRET,
        "HEARTBEAT_VAR_DIR": str(tmp_path),  # no secrets file: everything comes inherited
    }
    held = {}
    for program in programs:
        command, environment = sections[program.name]
        if program.secrets is None:
            assert command == program.command, program.name  # its own start filters (Superset)
            continue
        assert command == ["sh", str(SCRIPT), *program.command], program.name
        shown = subprocess.run(
            [*command[:2], sys.executable, "-c", SHOWN],
            env={**inherited, **environment},
            capture_output=True,
            text=True,
            check=True,
        )
        held[program.name] = held_secrets.among(json.loads(shown.stdout))
    assert held == {
        "postgres": set(),
        "kafka": set(),
        "stream-job": {"HEARTBEAT_APP_PASSWORD", "HEARTBEAT_KAFKA_JOB_PASSWORD"},
        "producer": {"HEARTBEAT_KAFKA_PRODUCER_PASSWORD"},
        "notifier": {"HEARTBEAT_NOTIFIER_PASSWORD", "HEARTBEAT_NOTIFIER_TOKEN",
                     "HEARTBEAT_KAFKA_NOTIFIER_PASSWORD", "HEARTBEAT_SMTP_PASSWORD"},
    }  # fmt: skip
