"""Static checks of the compose stack; `make compose-test` runs it for real (docker/).

What is checked here is what a run would not point at clearly: the file is valid Compose
Specification, the services run the native entrypoints, ports bind to localhost only, no secret
is written into the file, and the Dockerfiles order their layers so that code changes do not
reinstall dependencies."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from heartbeat_ops.config import ROOT, load
from heartbeat_ops.programs import product_programs

pytestmark = pytest.mark.unit

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
README = (ROOT / "README.md").read_text()
SCHEMA = json.loads((Path(__file__).parent / "vendor" / "compose-spec.json").read_text())
LONG_RUNNING = set(SERVICES) - {"init"}


def test_file_is_valid_compose_specification():
    jsonschema.Draft7Validator(SCHEMA).validate(COMPOSE)


def test_schema_check_is_not_vacuous():
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["producer"]["restart_policy"] = "always"  # not a Compose key
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SCHEMA).validate(broken)


def test_product_services_run_the_same_entrypoints_as_make_up():
    native = {p.name: Path(p.command[-1]).name for p in product_programs(load())}
    assert native == {
        "stream-job": "submit.sh",
        "producer": "heartbeat-producer",
        "superset": "run.sh",
        "notifier": "heartbeat-notifier",
    }
    assert SERVICES["stream-job"]["command"][-1] == "spark-jobs/submit.sh"
    assert SERVICES["producer"]["command"] == ["heartbeat-producer"]
    assert SERVICES["notifier"]["command"] == ["heartbeat-notifier"]
    superset_cmd = (ROOT / "superset" / "Dockerfile").read_text()
    assert 'CMD ["bash", "/app/superset/run.sh"]' in superset_cmd
    assert SERVICES["init"]["command"] == ["heartbeat-ops", "provision"]
    assert SERVICES["postgres"]["command"] == ["heartbeat-ops", "serve", "postgres"]
    assert SERVICES["kafka"]["command"] == ["heartbeat-ops", "serve", "kafka"]


def test_job_runs_on_the_standalone_cluster():
    job = SERVICES["stream-job"]["environment"]
    assert job["SPARK_MASTER"] == "${SPARK_MASTER:-spark://spark-master:7077}"
    assert "org.apache.spark.deploy.master.Master" in SERVICES["spark-master"]["command"]
    worker = SERVICES["spark-worker"]
    assert "org.apache.spark.deploy.worker.Worker" in worker["command"]
    # --scale spark-worker=N: no fixed name, no published port.
    assert "container_name" not in worker and "ports" not in worker


DEVICE_PORT = "${HEARTBEAT_DEVICE_LISTENER:-127.0.0.1:}:9094"


def test_published_ports_bind_to_localhost_and_are_configurable():
    published = [port for service in SERVICES.values() for port in service.get("ports", [])]
    assert published
    others = [port for port in published if port != DEVICE_PORT]
    assert all(re.fullmatch(r"127\.0\.0\.1:\$\{[A-Z_]+_HOST_PORT:-\d+\}:\d+", p) for p in others)


def test_device_listener_is_published_where_its_setting_says_and_keeps_its_tls():
    # Unset, the port goes to a random loopback port (nothing listens behind it).
    assert SERVICES["kafka"]["ports"] == [DEVICE_PORT]
    assert "kafka-tls:/var/lib/heartbeat/tls" in SERVICES["kafka"]["volumes"]
    assert "kafka-tls" in COMPOSE["volumes"]
    assert SERVICES["kafka"]["environment"]["HEARTBEAT_DEVICE_LISTENER"] == (
        "${HEARTBEAT_DEVICE_LISTENER:-}"
    )


def test_health_restart_and_dependencies():
    for name in LONG_RUNNING:
        service = SERVICES[name]
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", name
    assert SERVICES["init"]["restart"] == "no"
    conditions = {
        name: {dep: spec["condition"] for dep, spec in service.get("depends_on", {}).items()}
        for name, service in SERVICES.items()
    }
    assert conditions["init"] == {"postgres": "service_healthy", "kafka": "service_healthy"}
    for name in ("stream-job", "producer", "superset", "notifier"):
        assert conditions[name]["init"] == "service_completed_successfully"


def test_data_lives_in_named_volumes():
    assert {"state", "pgdata", "kafkadata", "checkpoints", "superset-home"} <= set(
        COMPOSE["volumes"]
    )
    # The driver's checkpoint survives a re-created container (the job keeps no executor state).
    assert "checkpoints:/var/lib/heartbeat/checkpoints" in SERVICES["stream-job"]["volumes"]


def test_every_variable_compose_sets_is_documented():
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", README))
    internal = {"HEARTBEAT_RUN_AS", "SPARK_LOCAL_IP"}  # container plumbing, not configuration
    used = {
        name
        for service in SERVICES.values()
        for name in (service.get("environment") or {})
        if name != "KAFKA_BOOTSTRAP_SERVERS"  # fixed to the kafka service in compose
    }
    text = (ROOT / "docker-compose.yml").read_text()
    used |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+):-", text))
    assert used - internal - documented == set()


def test_native_environment_names_are_the_ones_compose_uses():
    product_env = set(SERVICES["stream-job"]["environment"])
    native_env = set(load().environment()) - {"HEARTBEAT_VAR_DIR", "SUPERSET_PORT"}
    assert native_env <= product_env | set(SERVICES["superset"]["environment"])
    # The job's role is HEARTBEAT_APP_*, in both modes; libpq's generic names are never used.
    assert not {"PGUSER", "PGPASSWORD"} & (native_env | product_env)


def test_secrets_are_never_written_into_the_compose_file():
    for service in SERVICES.values():
        for name, value in (service.get("environment") or {}).items():
            if "PASSWORD" in name or "SECRET" in name:
                assert value == f"${{{name}:-}}", f"{name} must come from the environment"


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "superset/Dockerfile"])
def test_dockerfiles_copy_paths_that_exist(dockerfile):
    for line in (ROOT / dockerfile).read_text().splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"{dockerfile}: {source} missing"


@pytest.mark.parametrize(
    ("dockerfile", "pins", "code"),
    [
        ("Dockerfile", "/requirements.txt /tmp/requirements.txt", "COPY producer/"),
        ("superset/Dockerfile", "superset/requirements.txt", "COPY superset/ "),
    ],
)
def test_dependencies_install_before_the_code_is_copied(dockerfile, pins, code):
    text = (ROOT / dockerfile).read_text()
    assert text.startswith("#") and "ARG BASE_IMAGE=debian:bookworm-slim" in text
    assert text.index(pins) < text.index(code)


def test_image_resolves_the_same_connector_jars_as_make_install():
    native = re.search(
        r'install_jars spark .*?\n\s*"([^"]+)"', (ROOT / "ops/install.sh").read_text()
    )
    image = re.search(r"-DincludeArtifactIds=(\S+)", (ROOT / "Dockerfile").read_text())
    assert native and image and native.group(1) == image.group(1)
