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

from heartbeat_contract.settings import Settings
from heartbeat_ops.config import ROOT, load
from heartbeat_ops.programs import product_programs

pytestmark = pytest.mark.unit

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
README = (ROOT / "README.md").read_text()
SCHEMA = json.loads((Path(__file__).parent / "vendor" / "compose-spec.json").read_text())
LONG_RUNNING = set(SERVICES) - {"init"}


def _dockerfile_env(path: str) -> str:
    """The text of a Dockerfile's ENV instructions (with their continuation lines)."""
    lines, out, inside = (ROOT / path).read_text().splitlines(), [], False
    for line in lines:
        inside = line.startswith("ENV ") or (inside and line.startswith(" "))
        if inside:
            out.append(line)
            inside = line.rstrip().endswith("\\")
    return "\n".join(out)


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
    for node in KAFKA_NODES:
        assert SERVICES[node]["command"] == ["heartbeat-ops", "serve", "kafka"]


def test_job_runs_on_the_standalone_cluster():
    job = SERVICES["stream-job"]["environment"]
    assert job["SPARK_MASTER"] == "${SPARK_MASTER:-spark://spark-master:7077}"
    assert "org.apache.spark.deploy.master.Master" in SERVICES["spark-master"]["command"]
    worker = SERVICES["spark-worker"]
    assert "org.apache.spark.deploy.worker.Worker" in worker["command"]
    # --scale spark-worker=N: no fixed name, no published port.
    assert "container_name" not in worker and "ports" not in worker


# Node N's device listener: container port 9094 + N - 1, published where its variable says.
DEVICE_PORTS = {
    "kafka-1": "${HEARTBEAT_DEVICE_LISTENER:-127.0.0.1:}:9094",
    "kafka-2": "${KAFKA_2_DEVICE_LISTENER:-127.0.0.1:}:9095",
    "kafka-3": "${KAFKA_3_DEVICE_LISTENER:-127.0.0.1:}:9096",
}


def test_published_ports_bind_to_localhost_and_are_configurable():
    published = [port for service in SERVICES.values() for port in service.get("ports", [])]
    assert published
    others = [port for port in published if port not in DEVICE_PORTS.values()]
    assert all(re.fullmatch(r"127\.0\.0\.1:\$\{[A-Z_]+_HOST_PORT:-\d+\}:\d+", p) for p in others)


def test_device_listener_is_published_where_its_setting_says_and_keeps_its_tls():
    # Unset, the port goes to a random loopback port (nothing listens behind it).
    for node, port in DEVICE_PORTS.items():
        assert SERVICES[node]["ports"] == [port]
        # One CA and key pair for every node: devices trust one CA whichever node they reach.
        assert "kafka-tls:/var/lib/heartbeat/tls" in SERVICES[node]["volumes"]
        assert SERVICES[node]["environment"]["HEARTBEAT_DEVICE_LISTENER"] == (
            "${HEARTBEAT_DEVICE_LISTENER:-}"
        )
    assert "kafka-tls" in COMPOSE["volumes"]


KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")


def test_three_kafka_nodes_each_with_its_id_its_log_and_its_healthcheck():
    bootstrap = SERVICES["init"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"].split(",")
    assert bootstrap == [f"{node}:9092" for node in KAFKA_NODES]  # node N is the N-th address
    for number, node in enumerate(KAFKA_NODES, start=1):
        service = SERVICES[node]
        assert service["hostname"] == node
        assert service["environment"]["HEARTBEAT_KAFKA_NODE_ID"] == str(number)
        assert f"{node}-data:/var/lib/heartbeat/data/kafka" in service["volumes"]
        assert service["healthcheck"]["test"][-2:] == ["ready", "kafka-node"]
    replication = SERVICES["init"]["environment"]["HEARTBEAT_KAFKA_REPLICATION_FACTOR"]
    assert replication == "${HEARTBEAT_KAFKA_REPLICATION_FACTOR:-3}"


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
    assert conditions["init"] == {
        "postgres": "service_healthy",
        **dict.fromkeys(KAFKA_NODES, "service_healthy"),
    }
    for name in ("stream-job", "producer", "superset", "notifier"):
        assert conditions[name]["init"] == "service_completed_successfully"


def test_data_lives_in_named_volumes():
    assert {"state", "pgdata", "checkpoints", "superset-home"} <= set(COMPOSE["volumes"])
    assert {f"{node}-data" for node in KAFKA_NODES} <= set(COMPOSE["volumes"])
    # The driver's checkpoint survives a re-created container (the job keeps no executor state).
    assert "checkpoints:/var/lib/heartbeat/checkpoints" in SERVICES["stream-job"]["volumes"]


def test_every_variable_compose_sets_is_documented():
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", README))
    internal = {"HEARTBEAT_RUN_AS", "SPARK_LOCAL_IP"}  # container plumbing, not configuration
    used = {name for service in SERVICES.values() for name in (service.get("environment") or {})}
    text = (ROOT / "docker-compose.yml").read_text()
    used |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+):-", text))
    assert used - internal - documented == set()


# Compose parity: what each service reads reaches it, and compose passes nothing no one reads.
SETTINGS = {field.alias: field for field in Settings.model_fields.values()}
# Services that run the stack's own Python (every setting of the model reaches them).
PRODUCT_SERVICES = ("postgres", *KAFKA_NODES, "init", "stream-job", "producer", "notifier")
# Set by the image, not by compose: where the container keeps its state.
IMAGE_ENV = set(re.findall(r"\b([A-Z][A-Z0-9_]+)=", _dockerfile_env("Dockerfile")))
SUPERSET_IMAGE_ENV = set(
    re.findall(r"\b([A-Z][A-Z0-9_]+)=", _dockerfile_env("superset/Dockerfile"))
)
# Where the stack is inside the compose network: never taken from the caller's shell, where
# the same names point at the native stack.
FIXED = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092,kafka-2:9092,kafka-3:9092",
    "KAFKA_CONTROLLER_PORT": "9093",
    "HEARTBEAT_PG_HOST": "postgres",
    "HEARTBEAT_PG_PORT": "5432",
    "SUPERSET_PORT": "8088",
    "SPARK_UI_PORT": "4040",
    "HEARTBEAT_NOTIFIER_LISTEN": "0.0.0.0:8095",
    "HEARTBEAT_PG_REPLICA": "postgres-replica:5432",  # compose always runs the read replica
}
# Compose defaults that differ from the model's on purpose.
COMPOSE_DEFAULTS = {
    "PRODUCER_CUSTOMERS": "100",  # a small demo population
    "PRODUCER_MALFORMED_RATE": "0",
    "HEARTBEAT_DASHBOARD_URL": "http://localhost:18088",  # Superset as published on the host
    "HEARTBEAT_KAFKA_REPLICATION_FACTOR": "3",  # three nodes: a copy on each
}
# Fixed per service: which Kafka node a container is.
FIXED_PER_SERVICE = {
    (node, "HEARTBEAT_KAFKA_NODE_ID"): str(number)
    for number, node in enumerate(("kafka-1", "kafka-2", "kafka-3"), start=1)
}
# Read by a process, set by compose or the entrypoint, not a user's setting.
PLUMBING = {
    "HEARTBEAT_RUN_AS",  # the entrypoint's user to drop to
    "SPARK_LOCAL_IP",  # the driver's name for the executors to call back
    "SPARK_DAEMON_MEMORY",  # read by spark-class for the master and workers
    "SPARK_SUBMIT_OPTS",  # spark-submit's own JVM options: submit.sh only adds its JIT and GC flags
    "HEARTBEAT_SECRETS_LOADED",
    "HEARTBEAT_SECRETS",  # which secrets the entrypoint (ops/with-secrets.sh) lets the program hold
    "HEARTBEAT_VAR_DIR",
    "TZ",
    "SUPERSET_CONFIG_PATH",
    "SUPERSET_HOME",
    "SUPERSET_VENV",
    "SUPERSET_BIND_HOST",
    "PYSPARK_PYTHON",
    "SPARK_SUBMIT",
    "HEARTBEAT_SPARK_JARS_DIR",
}
READS = re.compile(
    r"\$\{([A-Z][A-Z0-9_]+):?-"  # shell: an environment variable read with its default
    r"|(?:environ\.get|environ\[|\benv|_env|_required)\(?[\"']([A-Z][A-Z0-9_]+)"  # python
)


def names_read(*paths: str) -> set[str]:
    text = "".join((ROOT / path).read_text() for path in paths)
    return {a or b for a, b in READS.findall(text)}


def compose_default(name: str, value: str) -> str | None:
    match = re.fullmatch(rf"\$\{{{name}:-(.*)\}}", str(value))
    return match.group(1) if match else None


@pytest.mark.parametrize("service", PRODUCT_SERVICES)
def test_every_setting_of_the_model_reaches_each_product_service(service):
    environment = SERVICES[service]["environment"]
    missing = set(SETTINGS) - set(environment) - IMAGE_ENV
    assert missing == set(), f"{service} never sees {sorted(missing)}"


def test_the_image_sets_only_where_state_lives():
    assert set(SETTINGS) & IMAGE_ENV == {"HEARTBEAT_VAR_DIR", "HEARTBEAT_CHECKPOINT_DIR"}


def test_settings_pass_through_with_the_models_default_or_a_stated_one():
    for service_name, service in SERVICES.items():
        for name, value in (service.get("environment") or {}).items():
            if (service_name, name) in FIXED_PER_SERVICE:
                assert str(value) == FIXED_PER_SERVICE[service_name, name], (service_name, name)
            elif name in FIXED:
                assert str(value) == FIXED[name], f"{name} must be fixed in compose"
            elif name in SETTINGS:
                default = compose_default(name, value)
                assert default is not None, f"{name}: {value!r} does not pass the caller's value"
                model = SETTINGS[name].default
                expected = {"", str(model if model is not None else "")}
                assert default in expected or COMPOSE_DEFAULTS.get(name) == default, (
                    f"{name} defaults to {default!r} in compose but {model!r} in the model"
                )


@pytest.mark.parametrize(
    ("service", "scripts", "image_env"),
    [
        ("stream-job", ["spark-jobs/submit.sh"], "IMAGE_ENV"),
        (
            "superset",
            ["superset/run.sh", "superset/superset_config.py", "superset/bootstrap.py"],
            "SUPERSET_IMAGE_ENV",
        ),
    ],
)
def test_what_a_services_scripts_read_reaches_it(service, scripts, image_env):
    read = names_read(*scripts) - PLUMBING
    passed = set(SERVICES[service]["environment"]) | globals()[image_env]
    assert read, "the pattern finds nothing: the check would be vacuous"
    assert read - passed == set(), f"{service} reads {sorted(read - passed)}, compose omits them"


def test_compose_passes_nothing_that_no_part_reads():
    read_by_scripts = names_read(
        "spark-jobs/submit.sh",
        "superset/run.sh",
        "superset/superset_config.py",
        "superset/bootstrap.py",
    )
    for name, service in SERVICES.items():
        for variable in service.get("environment") or {}:
            assert variable in SETTINGS or variable in read_by_scripts or variable in PLUMBING, (
                f"{name}: {variable} is read by nothing"
            )


def test_every_service_on_the_image_can_build_it():
    for name, service in SERVICES.items():
        if "image" in service:
            assert "build" in service, f"{name} uses {service['image']} but cannot build it"


def test_host_ports_default_clear_of_the_native_stack():
    native = {5432, 8088, 8080, 8095, 9092, 9093, 4040}
    text = (ROOT / "docker-compose.yml").read_text()
    defaults = {int(p) for p in re.findall(r"_HOST_PORT:-(\d+)\}", text)}
    assert defaults and not defaults & native


def test_secrets_are_never_written_into_the_compose_file():
    for service in SERVICES.values():
        for name, value in (service.get("environment") or {}).items():
            if name == "HEARTBEAT_SECRETS":  # the names of a program's secrets, not their values
                assert re.fullmatch(r"[A-Z_ ]+", value), value
            elif "PASSWORD" in name or "SECRET" in name:
                assert value == f"${{{name}:-}}", f"{name} must come from the environment"


def test_every_service_that_drops_root_with_the_secrets_names_its_own():
    """A long-running service that mounts the secrets and runs as `heartbeat` says which of them
    its program holds (Superset says so in superset/run.sh, both natively and in compose)."""
    unnamed = [
        name
        for name, service in SERVICES.items()
        if any(str(v).startswith("state:") for v in service.get("volumes", []))
        and (service.get("environment") or {}).get("HEARTBEAT_RUN_AS", "heartbeat") == "heartbeat"
        and name != "superset"
        and "HEARTBEAT_SECRETS" not in (service.get("environment") or {})
    ]
    assert unnamed == []
    assert 'HEARTBEAT_SECRETS="$SUPERSET_SECRETS"' in (ROOT / "superset/run.sh").read_text()


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


def test_native_programs_hold_the_secrets_their_compose_services_name():
    """One list per program: supervisord starts it through ops/with-secrets.sh with the same
    HEARTBEAT_SECRETS as its compose service (tests/unit/test_with_secrets.py runs them)."""
    native = {p.name: p.secrets for p in product_programs(load()) if p.secrets is not None}
    assert set(native) == {"stream-job", "producer", "notifier"}
    for name, secrets in native.items():
        named = SERVICES[name]["environment"]["HEARTBEAT_SECRETS"].split()
        assert sorted(named) == sorted(secrets), name
