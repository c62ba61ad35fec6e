"""The end-to-end checks of `make compose-test` against a running compose project.

Standard library only (the host's python3): it talks to the stack through `docker-compose`
(exec/run) and the ports published on 127.0.0.1, nothing else.

  compose_check.py healthy      every service healthy (init exited 0); fails fast on a crash
  compose_check.py pipeline     readings published through the producer land exactly once
  compose_check.py spark        the master's /json/ shows the job running on its workers
  compose_check.py broker-loss  under steady load one Kafka node is killed and started again:
                                every acknowledged reading lands once, the job never stops,
                                the ingestion stall and the node's catch-up time are printed
  compose_check.py notify       one alert event reaches a webhook receiver through the notifier
  compose_check.py devices      a device over SASL_SSL writes readings (landed once), nothing else
  compose_check.py replica      the read replica streams, Superset reads it, a primary's row shows
                                there within a printed bound, its lag is in pipeline_metrics
  compose_check.py accounts     `heartbeat-ops superset add-user` in the superset container; the
                                viewer over HTTP sees both dashboards and is refused the rest;
                                after `remove-user` the login is refused
  compose_check.py secrets      each long-running container's program holds its own secrets only
                                (its first process's environment, read from the host's /proc)
  compose_check.py rss          resident memory of each container's processes (ps RSS, summed)
  compose_check.py leftovers    no container, network or volume of the project is left
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

PROJECT = os.environ["COMPOSE_PROJECT_NAME"]
ONE_SHOT = {"init"}
KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")  # node N is kafka-N (docker-compose.yml)
# A service restarted this often is crash-looping: fail now instead of at the deadline.
MAX_RESTARTS = 2


def compose(*args: str, check: bool = True, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["docker-compose", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise SystemExit(f"docker-compose {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, timeout=120
    ).stdout


def poll(what: str, check, timeout: float, interval: float = 2.0):
    """Call `check` until it returns a true value; it may raise SystemExit to fail at once."""
    started = time.monotonic()
    while True:
        value = check()
        if value:
            print(f"    {what}: ok after {time.monotonic() - started:.0f}s", flush=True)
            return value
        if time.monotonic() - started > timeout:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for: {what}")
        time.sleep(interval)


def containers() -> list[dict]:
    """The project's containers, inspected. Listed by label, and inspected without failing on a
    container that vanished in between: while `up` is still creating services, docker-compose
    replaces containers, and `docker-compose ps` itself failed once on one ("No such
    container"). A vanished container is simply absent from this round of the poll."""
    project = f"label=com.docker.compose.project={PROJECT}"
    service = "label=com.docker.compose.oneoff=False"  # as `docker-compose ps`: no `run` ones
    ids = docker("ps", "-a", "-q", "--filter", project, "--filter", service).split()
    if not ids:
        return []
    found = subprocess.run(
        ["docker", "inspect", *ids], capture_output=True, text=True, check=False, timeout=120
    )
    return json.loads(found.stdout or "[]")


def _service(container: dict) -> str:
    return container["Config"]["Labels"]["com.docker.compose.service"]


def _up_running() -> bool:
    """Is the `docker-compose up` that compose-test started (UP_PID) still creating services?"""
    pid = int(os.environ.get("UP_PID", "0"))
    if not pid:
        return True
    try:  # exited but not yet reaped by the script: a zombie ("Z") counts as ended
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def all_healthy() -> bool:
    # Whether `up` has ended is read before the listing, so a service it created after the
    # listing (superset, created last once postgres-replica is healthy) is not taken as missing.
    up_ended = not _up_running()
    current = containers()
    wanted = dict.fromkeys(compose("config", "--services").split(), 1)
    wanted["spark-worker"] = int(os.environ.get("SPARK_WORKERS", "1"))
    created = [_service(c) for c in current]
    pending = [f"{s} not created" for s, n in wanted.items() if created.count(s) < n]
    if pending and up_ended:
        raise SystemExit(f"docker-compose up ended with services missing: {pending}")
    for c in current:
        name, state = c["Name"].lstrip("/"), c["State"]
        if _service(c) in ONE_SHOT:
            if state["Status"] == "exited" and state["ExitCode"] != 0:
                raise SystemExit(f"{name} exited with {state['ExitCode']}")
            if state["Status"] != "exited":
                pending.append(f"{name} running")
            continue
        if c["RestartCount"] > MAX_RESTARTS or state["Status"] in {"exited", "dead"}:
            raise SystemExit(
                f"{name} cannot start: {state['Status']}, {c['RestartCount']} restarts"
            )
        health = state.get("Health", {}).get("Status", "none")
        if health == "unhealthy":
            raise SystemExit(f"{name} is unhealthy")
        if health != "healthy":
            pending.append(f"{name} {health}")
    if pending:
        print(f"    waiting: {', '.join(pending)}", flush=True)
    return not pending


def cmd_healthy() -> None:
    poll("every service healthy", all_healthy, float(os.environ.get("HEALTH_TIMEOUT", "900")), 5)


def psql(
    sql: str, *, on: str = "postgres", database: str = "", **variables: str
) -> list[list[str]]:
    """Run SQL as the superuser (`on` the primary over its socket, or the read replica over its
    loopback with the secrets its entrypoint exports); values go in as psql variables, quoted by
    psql itself (:'name'), never pasted into the text. `database`: the product's by default."""
    target = f'-d "{database}"' if database else '-d "$HEARTBEAT_PG_DATABASE"'
    command = (
        'exec psql -X -q -A -t -F "|" -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" '
        f'-h /var/lib/heartbeat/run/postgresql {target} "$@"'
    )
    if on == "postgres":
        args = ["exec", "-T", "--user", "postgres", "postgres", "sh", "-c", command, "psql"]
    else:  # the replica has no socket; its entrypoint wrapper exports POSTGRES_PASSWORD
        command = command.replace("-h /var/lib/heartbeat/run/postgresql", "-h 127.0.0.1")
        args = ["exec", "-T", on, "/app/ops/with-secrets.sh", "sh", "-c",
                'PGPASSWORD="$POSTGRES_PASSWORD" ' + command, "psql"]  # fmt: skip
    for name, value in variables.items():
        args += ["-v", f"{name}={value}"]
    # From stdin: psql interpolates :'name' there, not in a -c string.
    out = compose(*args, stdin=sql)
    return [line.split("|") for line in out.splitlines() if line]


END_OFFSETS = """
import json, os
from kafka import KafkaConsumer, TopicPartition
from heartbeat_contract.kafka_security import ADMIN, kafka_client_args
from heartbeat_ops.config import load
c = KafkaConsumer(**kafka_client_args(load(), ADMIN))
topic = os.environ["KAFKA_TOPIC"]
parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic))]
print(json.dumps({tp.partition: o for tp, o in c.end_offsets(parts).items()}))
"""

COVERAGE = """
SELECT kafka_partition, count(*), count(DISTINCT kafka_offset), coalesce(max(kafka_offset), -1)
FROM (SELECT kafka_partition, kafka_offset FROM heart_rate_readings WHERE kafka_topic = :'topic'
      UNION ALL
      SELECT kafka_partition, kafka_offset FROM rejected_readings WHERE kafka_topic = :'topic') m
GROUP BY kafka_partition
"""

COUNTS = """
SELECT 'valid', count(*) FROM heart_rate_readings
UNION ALL SELECT reason, count(*) FROM rejected_readings GROUP BY reason
"""


def topic_end_offsets(via: str = KAFKA_NODES[0]) -> dict[int, int]:
    out = compose("exec", "-T", via, "python", "-c", END_OFFSETS)
    return {int(p): int(o) for p, o in json.loads(out).items()}


def every_offset_landed_once(topic: str, ends: dict[int, int]) -> bool:
    """Every message of every partition is in exactly one of the two tables, none twice:
    per partition, rows == distinct offsets == the partition's end offset."""
    seen = {int(p): (int(n), int(d), int(m)) for p, n, d, m in psql(COVERAGE, topic=topic)}
    for partition, end in ends.items():
        rows, distinct, highest = seen.get(partition, (0, 0, -1))
        if rows != distinct:
            raise SystemExit(f"partition {partition}: {rows - distinct} offsets landed twice")
        if distinct != end or highest != end - 1:
            return False
    return True


def outcome_counts() -> dict[str, int]:
    return {outcome: int(n) for outcome, n in psql(COUNTS)}


def cmd_pipeline() -> None:
    topic = os.environ.get("KAFKA_TOPIC", "heart-rate-readings")
    poll(
        "the running producer's readings reach PostgreSQL",
        lambda: outcome_counts().get("valid", 0) > 0,
        600,
        5,
    )
    # Stop the free-running producer so that the topic's end is known, and let the job drain.
    compose("stop", "producer")
    ends = topic_end_offsets()
    poll(
        f"all {sum(ends.values())} messages so far landed once",
        lambda: every_offset_landed_once(topic, ends),
        300,
    )
    before = outcome_counts()

    # A bounded run through the producer's container: valid, out-of-range and malformed.
    count = int(os.environ.get("CHECK_READINGS", "2000"))
    out = compose(
        "run",
        "--rm",
        "--no-deps",
        "-T",
        "producer",
        "sh",
        "-c",
        f"heartbeat-producer --count {count} --rate 500 --customers 20 --seed 7 "
        "--invalid-rate 0.05 --malformed-rate 0.05 --log-level WARNING "
        "--ledger /tmp/ledger.json && cat /tmp/ledger.json",
    )
    ledger = json.loads(out[out.index("{") :])
    assert ledger["sent"] == count and ledger["failed"] == 0, ledger
    expected = ledger["outcomes"]
    print(f"    published {count} readings through the producer: {expected}", flush=True)

    ends = topic_end_offsets()
    poll(
        f"all {sum(ends.values())} messages landed once",
        lambda: every_offset_landed_once(topic, ends),
        300,
    )
    after = outcome_counts()
    landed = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
    landed = {k: v for k, v in landed.items() if v}
    if landed != expected:
        raise SystemExit(f"landed {landed}, expected {expected}")
    print(f"    each landed exactly once, in the right table: {landed}", flush=True)
    compose("start", "producer")


# Every partition of the product's topics and Kafka's own: leader, replicas, in-sync replicas.
REPLICAS = """
import json, os
from heartbeat_ops.config import load
from heartbeat_ops.principals import admin_client
admin = admin_client(load(), request_timeout_ms=10000)
try:
    names = set(admin.list_topics())
    wanted = [os.environ["KAFKA_TOPIC"], os.environ["KAFKA_ALERTS_TOPIC"], "__consumer_offsets"]
    out = {}
    for topic in admin.describe_topics([t for t in wanted if t in names]):
        for p in topic["partitions"]:
            out[f"{topic['name']}/{p['partition_index']}"] = {
                "leader": p["leader_id"], "replicas": p["replica_nodes"], "isr": p["isr_nodes"]}
    print(json.dumps(out))
finally:
    admin.close()
"""

# Polls once a second, in one process (a `docker-compose exec` per poll takes seconds on a
# loaded machine), until node argv[1] is back in the ISR of every partition it holds.
CAUGHT_UP = """
import json, sys, time
from kafka.errors import KafkaError
from heartbeat_ops.config import load
from heartbeat_ops.principals import admin_client
node, timeout = int(sys.argv[1]), float(sys.argv[2])
admin = admin_client(load(), request_timeout_ms=10000)
started, behind = time.monotonic(), ["not asked yet"]
while behind and time.monotonic() - started < timeout:
    try:
        behind = [f"{t['name']}/{p['partition_index']}"
                  for t in admin.describe_topics(list(admin.list_topics()))
                  for p in t["partitions"]
                  if node in p["replica_nodes"] and node not in p["isr_nodes"]]
    except KafkaError as error:
        behind = [repr(error)]
    if behind:
        time.sleep(1)
admin.close()
print(json.dumps({"behind": behind}))
"""

# The load's readings: rows, distinct (customer, event time) (the simulator never repeats one
# for a customer, so a difference is a reading stored twice), and the batch commits (each batch
# moves its readings in one transaction: one ingested_at per commit).
LOAD_ROWS = """
SELECT count(*), count(DISTINCT (customer_id, "timestamp")), count(DISTINCT ingested_at)
FROM heart_rate_readings WHERE customer_id LIKE :'prefix' || '%'
"""
LOAD_GAPS = """
WITH commits AS (SELECT DISTINCT ingested_at AS at FROM heart_rate_readings
                 WHERE customer_id LIKE :'prefix' || '%'),
     gaps AS (SELECT at, extract(epoch FROM at - lag(at) OVER (ORDER BY at)) AS gap FROM commits)
SELECT gap, extract(epoch FROM at) FROM gaps WHERE gap IS NOT NULL ORDER BY at
"""


def _replicas(via: str) -> dict[str, dict]:
    return json.loads(_last_line(compose("exec", "-T", via, "python", "-c", REPLICAS)))


def _last_line(out: str) -> str:
    return [line for line in out.splitlines() if line.strip()][-1]


def _container(service: str) -> dict:
    (found,) = [c for c in containers() if _service(c) == service]
    return found


def _job_identity() -> tuple[str, str, int]:
    """(Spark application id, container start, restarts): equal before and after means the
    job ran through without a restart."""
    url = f"http://127.0.0.1:{os.environ.get('SPARK_MASTER_UI_HOST_PORT', '18080')}/json/"
    with urllib.request.urlopen(url, timeout=10) as response:
        apps = [a for a in json.load(response)["activeapps"] if a["name"] == "heartbeat-stream"]
    if len(apps) != 1:
        raise SystemExit(f"expected one running heartbeat-stream on the master, found {apps}")
    job = _container("stream-job")
    return apps[0]["id"], job["State"]["StartedAt"], job["RestartCount"]


def _load_rows(prefix: str) -> tuple[int, int, int]:
    ((rows, distinct, commits),) = psql(LOAD_ROWS, prefix=prefix)
    return int(rows), int(distinct), int(commits)


def cmd_broker_loss() -> None:
    """Steady load from the producer's container; the leader of the readings topic's partition
    0 is killed (`docker kill`), the load goes on, the node is started again and must catch up
    (back in every ISR). Then: every acknowledged reading stored exactly once (the ledger's sent
    = stored, no duplicate), the job ran through (same Spark app, no container restart), and
    the longest gap between the load's batch commits (the stall) is printed."""
    topic = os.environ.get("KAFKA_TOPIC", "heart-rate-readings")
    rate = int(os.environ.get("LOSS_RATE", "200"))
    outage = float(os.environ.get("LOSS_OUTAGE_SECONDS", "30"))
    seconds = int(os.environ.get("LOSS_LOAD_SECONDS", "150"))
    job_before = _job_identity()
    compose("stop", "producer")  # only the counted load from here on
    replicas = _replicas(KAFKA_NODES[0])
    victim_id = replicas[f"{topic}/0"]["leader"]
    victim = f"kafka-{victim_id}"
    via = next(node for node in KAFKA_NODES if node != victim)
    led = sorted(k for k, p in replicas.items() if p["leader"] == victim_id and "__" not in k)
    print(f"    {victim} (node {victim_id}) leads {', '.join(led)}", flush=True)
    prefix = f"LOSS{int(time.time())}-"
    load = subprocess.Popen(
        ["docker-compose", "run", "--rm", "--no-deps", "-T", "producer", "sh", "-c",
         f"heartbeat-producer --duration {seconds} --rate {rate} --customers 50 "
         f"--customer-prefix {prefix} --invalid-rate 0 --malformed-rate 0 --critical-rate 0 "
         # Long enough to settle what is in flight when the load ends, stalled or not.
         "--flush-timeout 300 --log-level WARNING --ledger /tmp/ledger.json; status=$?; "
         "cat /tmp/ledger.json; exit $status"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        poll(
            f"{rate * 10} readings of the load stored (steady before the kill)",
            lambda: _load_rows(prefix)[0] >= rate * 10,
            300,
        )
        stored_at_kill = _load_rows(prefix)[0]
        docker("kill", _container(victim)["Id"])
        killed_at = time.time()
        print(f"    docker kill {victim} at +0 s ({stored_at_kill} readings stored)", flush=True)
        poll(
            f"{int(rate * outage)} more readings stored while {victim} is down",
            lambda: _load_rows(prefix)[0] - stored_at_kill >= rate * outage,
            outage * 10,
        )
        if _container(victim)["State"]["Running"]:
            raise SystemExit(f"{victim} came back by itself: the outage was not one")
        down_for = time.time() - killed_at
        docker("start", _container(victim)["Id"])
        started_at = time.time()
        print(f"    docker start {victim} after {down_for:.0f} s down", flush=True)

        caught_up = _last_line(
            compose("exec", "-T", via, "python", "-c", CAUGHT_UP, str(victim_id), "420")
        )  # within compose()'s own 600 s limit
        if json.loads(caught_up)["behind"]:
            raise SystemExit(f"{victim} did not catch up in 420 s: {caught_up}")
        print(
            f"    catch-up: {victim} back in the ISR of every partition it holds within "
            f"{time.time() - started_at:.0f} s of its start",
            flush=True,
        )
        out, err = load.communicate(timeout=seconds + 900)
    finally:
        if load.poll() is None:
            load.kill()
    ledger = json.loads(out[out.index("{") :]) if "{" in out else {}
    summary = {k: ledger.get(k) for k in ("generated", "sent", "failed", "unconfirmed")}
    print(f"    the load's producer: {summary}", flush=True)
    if load.returncode != 0 or not ledger:
        raise SystemExit(f"the load's producer failed ({load.returncode}):\n{err[-3000:]}")
    if ledger["failed"] or ledger["unconfirmed"] or ledger["outcomes"] != {"valid": ledger["sent"]}:
        raise SystemExit(f"the producer lost acknowledgements: {ledger}")
    ends = topic_end_offsets(via)
    poll(
        f"all {sum(ends.values())} messages of {topic} landed once",
        lambda: every_offset_landed_once(topic, ends),
        600,
    )
    rows, distinct, commits = _load_rows(prefix)
    duplicates = rows - distinct
    print(
        f"    ledger: sent {ledger['sent']}, failed {ledger['failed']}, stored {rows}, "
        f"duplicates {duplicates}, in {commits} batch commits",
        flush=True,
    )
    if rows != ledger["sent"] or duplicates:
        raise SystemExit(f"sent {ledger['sent']} but stored {rows} ({duplicates} duplicates)")
    gaps = [(float(gap), float(at)) for gap, at in psql(LOAD_GAPS, prefix=prefix)]
    before = sorted(gap for gap, at in gaps if at < killed_at)
    stall, stall_end = max(gaps)
    typical = f"{before[len(before) // 2]:.1f} s" if before else "n/a: under two commits"
    print(
        f"    stall: longest gap between batch commits {stall:.1f} s, ending "
        f"{stall_end - killed_at:+.0f} s after the kill (median gap before the kill {typical})",
        flush=True,
    )
    job_after = _job_identity()
    if job_after != job_before:
        raise SystemExit(f"the job restarted: {job_before} -> {job_after}")
    print(f"    the job ran through: Spark app {job_after[0]}, no restart", flush=True)
    compose("start", "producer")


def cmd_kafka_rss() -> None:
    """Resident memory of the Kafka nodes alone (rss prints every container's)."""
    total = 0
    for node in KAFKA_NODES:
        rows = docker("top", _container(node)["Id"], "-o", "pid,rss").splitlines()[1:]
        rss = sum(int(row.split()[1]) for row in rows) // 1024
        total += rss
        print(f"rss {node:<40} {rss:>6} MiB", flush=True)
    print(f"rss {'kafka nodes total':<40} {total:>6} MiB", flush=True)


def cmd_spark() -> None:
    url = f"http://127.0.0.1:{os.environ.get('SPARK_MASTER_UI_HOST_PORT', '18080')}/json/"
    with urllib.request.urlopen(url, timeout=10) as response:
        master = json.load(response)
    workers = [w for w in master["workers"] if w["state"] == "ALIVE"]
    apps = [a for a in master["activeapps"] if a["name"] == "heartbeat-stream"]
    wanted = int(os.environ.get("SPARK_WORKERS", "2"))
    if len(workers) < wanted or len(apps) != 1 or apps[0]["state"] != "RUNNING":
        raise SystemExit(f"master {url}: {len(workers)} workers, apps {master['activeapps']}")
    busy = [w["host"] for w in workers if w["coresused"] > 0]
    if len(busy) < wanted:
        raise SystemExit(f"executors on {busy} only, {wanted} workers expected to run one")
    print(
        f"    {url}: heartbeat-stream RUNNING with {apps[0]['cores']} cores on "
        f"{len(busy)} workers ({', '.join(busy)})",
        flush=True,
    )


# A webhook receiver on the compose network, in a container of the product's image: it answers
# 200 and prints each request as one JSON line; the checks (signature, freshness) run here.
RECEIVER = """
import base64, json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        print(json.dumps({"path": self.path, "headers": dict(self.headers.items()),
                          "body": base64.b64encode(body).decode()}), flush=True)
        self.send_response(200)
        self.end_headers()
HTTPServer(("0.0.0.0", 8099), Receiver).serve_forever()
"""
RECEIVER_HOST = "webhook-receiver"

# One `open` event in the contract's format, published where the stream job publishes them.
PUBLISH_ALERT = """
import json, os, sys
from datetime import UTC, datetime
from kafka import KafkaProducer
from heartbeat_contract.alerts import OPEN, TACHYCARDIA, alert_event, encode_event
from heartbeat_contract.kafka_security import JOB, kafka_client_args
from heartbeat_ops.config import load
now = datetime.now(UTC)
event = alert_event(customer_id=sys.argv[1], kind=TACHYCARDIA, status=OPEN, started_at=now,
                    last_reading_at=now, extreme_bpm=151, readings=12, threshold_bpm=120.0)
key, value = encode_event(event)
producer = KafkaProducer(**kafka_client_args(load(), JOB), acks="all")  # as the job does
producer.send(os.environ["KAFKA_ALERTS_TOPIC"], key=key, value=value).get(timeout=60)
producer.close()
print(json.dumps(event))
"""

DELIVERY = """
SELECT outcome, attempts, http_status FROM notify_deliveries
WHERE channel_id = :'channel' AND event_id = :'event'
"""


def _project_network() -> str:
    label = f"label=com.docker.compose.project={PROJECT}"
    networks = docker("network", "ls", "-q", "--filter", label).split()
    if len(networks) != 1:
        raise SystemExit(f"expected one network of {PROJECT}, found {networks}")
    return networks[0]


def _last_json_line(out: str) -> dict:
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


def _notifier_channels() -> int:
    url = f"http://127.0.0.1:{os.environ.get('NOTIFIER_HOST_PORT', '18095')}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return int(
        next(
            line.split()[-1]
            for line in text.splitlines()
            if line.startswith("heartbeat_notifier_channels ")
        )
    )


def _received(receiver: str) -> list[dict]:
    out = docker("logs", receiver)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _check_request(request: dict, secret: str, event: dict) -> None:
    """What a receiver does (README, "Notifications"): signature over the raw body, freshness."""
    headers = {name.lower(): value for name, value in request["headers"].items()}
    body = base64.b64decode(request["body"])
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, headers.get("x-heartbeat-signature", "")):
        raise SystemExit(f"bad signature {headers.get('x-heartbeat-signature')!r}")
    age = time.time() - int(headers["x-heartbeat-timestamp"])
    if not -60 <= age <= 300:
        raise SystemExit(f"X-Heartbeat-Timestamp {age:.0f}s old")
    payload = json.loads(body)
    if payload["event_id"] != event["event_id"] or payload["status"] != "open":
        raise SystemExit(f"received {payload}, expected event {event['event_id']}")
    if payload["delivery_id"] != headers["x-heartbeat-delivery"]:
        raise SystemExit("X-Heartbeat-Delivery differs from the signed body's delivery_id")


def cmd_notify() -> None:
    receiver = f"{PROJECT}-{RECEIVER_HOST}"
    # A leftover of an interrupted run goes first.
    subprocess.run(["docker", "rm", "-f", receiver], capture_output=True, check=False)
    docker(
        "run",
        "-d",
        "--name",
        receiver,
        "--network",
        _project_network(),
        "--network-alias",
        RECEIVER_HOST,
        "--label",
        f"com.docker.compose.project={PROJECT}",
        "--user",
        "heartbeat",
        "--entrypoint",
        "python3",
        "heartbeat:latest",
        "-u",
        "-c",
        RECEIVER,
    )
    customer = f"COMPOSE-CHECK-{int(time.time())}"
    url = f"http://{RECEIVER_HOST}:8099/hook/{customer}"  # this run's channel only
    try:
        channels_before = _notifier_channels()
        # As an operator: through the entrypoint, which exports the secrets, staying root (like
        # `init`: the superuser's password is in the root-only secrets file).
        added = _last_json_line(
            compose(
                "run",
                "--rm",
                "--no-deps",
                "-T",
                "-e",
                "HEARTBEAT_RUN_AS=",
                "notifier",
                "heartbeat-ops",
                "notify",
                "add-webhook",
                url,
                "--json",
            )
        )
        print(f"    webhook channel {added['id']} -> {url}", flush=True)
        poll("the notifier sees the channel", lambda: _notifier_channels() > channels_before, 60)
        event = _last_json_line(
            compose("exec", "-T", KAFKA_NODES[0], "python", "-c", PUBLISH_ALERT, customer)
        )
        print(f"    published open event {event['event_id']} for {customer}", flush=True)

        def mine() -> list[dict]:
            # The channel takes every event: the live job's real alerts arrive here too.
            return [
                r
                for r in _received(receiver)
                if r["path"] == f"/hook/{customer}"
                and json.loads(base64.b64decode(r["body"])).get("customer_id") == customer
            ]

        requests = poll("the signed POST reaches the receiver", mine, 180)
        _check_request(requests[0], added["secret"], event)
        rows = poll(
            "the delivery is recorded as delivered",
            lambda: [
                r
                for r in psql(DELIVERY, channel=str(added["id"]), event=event["event_id"])
                if r[0] == "delivered"
            ],
            60,
        )
        if len(mine()) != 1:
            raise SystemExit(f"{len(mine())} POSTs for one event on one channel")
        print(
            f"    signature and timestamp verified; delivery log: {rows[0][0]}, "
            f"{rows[0][1]} attempt(s), HTTP {rows[0][2]}",
            flush=True,
        )
    finally:
        subprocess.run(["docker", "rm", "-f", receiver], capture_output=True, check=False)


# Readings of one customer at one heart rate, one every 3 s over the last 90 s of event time:
# past the default sustain (60 s) of a tachycardia run.
PUBLISH_RUN = """
import os, sys
from datetime import UTC, datetime, timedelta
from kafka import KafkaProducer
from heartbeat_contract.message import encode_reading
from heartbeat_contract.kafka_security import PRODUCER, kafka_client_args
from heartbeat_ops.config import load
customer, bpm = sys.argv[1], int(sys.argv[2])
producer = KafkaProducer(**kafka_client_args(load(), PRODUCER), acks="all")
start = datetime.now(UTC) - timedelta(seconds=90)
for i in range(31):
    key, value = encode_reading(customer, start + timedelta(seconds=3 * i), bpm)
    producer.send(os.environ["KAFKA_TOPIC"], key=key, value=value)
producer.flush(timeout=60)
producer.close()
"""

STORED = """
SELECT count(*) FROM heart_rate_readings WHERE customer_id = :'customer'
"""

EPISODE = """
SELECT kind, threshold_bpm FROM heart_rate_alerts WHERE customer_id = :'customer'
"""


def cmd_threshold() -> None:
    """The job in its container uses the alert threshold set in the caller's environment: a run
    above that bound opens an episode recorded with it, and a run between the model's default
    (120) and that bound opens none."""
    high = int(os.environ["HEARTBEAT_ALERT_HIGH_BPM"])
    stamp = int(time.time())
    above, between = f"COMPOSE-HIGH-{stamp}", f"COMPOSE-BETWEEN-{stamp}"
    compose("exec", "-T", KAFKA_NODES[0], "python", "-c", PUBLISH_RUN, above, str(high + 10))
    compose("exec", "-T", KAFKA_NODES[0], "python", "-c", PUBLISH_RUN, between, str(high - 5))
    rows = poll(
        f"a tachycardia episode at {high + 10} bpm",
        lambda: psql(EPISODE, customer=above),
        180,
    )
    if rows != [["tachycardia", str(high)]]:
        raise SystemExit(f"expected one tachycardia episode at threshold {high}, found {rows}")
    # Alert state advances in the transaction that stores the readings: once all of them are
    # stored, the run has been judged.
    poll(
        f"the {high - 5} bpm run stored",
        lambda: psql(STORED, customer=between) == [["31"]],
        180,
    )
    if psql(EPISODE, customer=between):
        raise SystemExit(f"{high - 5} bpm opened an episode: the job used another threshold")
    print(
        f"    HEARTBEAT_ALERT_HIGH_BPM={high} reached the job: {high + 10} bpm opened tachycardia "
        f"(threshold {high}), {high - 5} bpm opened nothing",
        flush=True,
    )


DEVICE_ROWS = """
SELECT kafka_partition, kafka_offset FROM heart_rate_readings
WHERE kafka_topic = :'topic' AND customer_id = :'customer'
"""


def _device_client(state: str, mode: str, *args: str) -> dict:
    """tests/support/device_client.py in the product's image on the host's network: a device
    dialling the published device port, as one on another machine would."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = _docker_run_device(root, state, mode, *args)
    except subprocess.CalledProcessError as error:  # say why, not only the exit status
        raise SystemExit(f"the device client failed ({mode}):\n{error.stderr[-3000:]}") from error
    return _last_json_line(out)


def _docker_run_device(root: str, state: str, mode: str, *args: str) -> str:
    return docker(
        "run", "--rm", "--network", "host", "--user", "heartbeat",
        "-v", f"{root}/tests/support/device_client.py:/device/client.py:ro",
        "-v", f"{state}:/device/state:ro",
        "--entrypoint", "/opt/heartbeat/venv/bin/python", "heartbeat:latest",
        "/device/client.py", mode, "/device/state/device.json", *args,
    )  # fmt: skip


def cmd_devices() -> None:
    """`heartbeat-ops devices add` in the kafka container; a kafka-python device writes over
    SASL_SSL through the published port and is refused everything else; its readings land
    exactly once; after `devices revoke` it cannot log in."""
    topic = os.environ.get("KAFKA_TOPIC", "heart-rate-readings")
    alerts = os.environ.get("KAFKA_ALERTS_TOPIC", "heart-rate-alerts")
    state = os.path.abspath(os.environ.get("DEVICE_CHECK_STATE", "var/compose/device"))
    os.makedirs(state, exist_ok=True)
    name = f"compose-device-{int(time.time())}"
    config = json.loads(compose("exec", "-T", KAFKA_NODES[0], "heartbeat-ops", "devices", "add",
                                name, "--json"))  # fmt: skip
    print(f"    devices add {name}: {config['bootstrap_servers']} over SASL_SSL", flush=True)
    ca = compose("exec", "-T", KAFKA_NODES[0], "heartbeat-ops", "devices", "ca")
    with open(f"{state}/ca.pem", "w") as handle:
        handle.write(ca)
    with open(f"{state}/device.json", "w") as handle:
        json.dump({**config, "ssl_cafile": "/device/state/ca.pem"}, handle)
    os.chmod(state, 0o755)
    for path in ("ca.pem", "device.json"):
        os.chmod(f"{state}/{path}", 0o644)  # read by the client's unprivileged user

    customer = f"DEVICE-CHECK-{int(time.time())}"
    count = 50
    report = _device_client(state, "probe", topic, alerts, str(count), customer)
    print(f"    refused as they must be: {report['refused']}", flush=True)
    # kafka-python sees a refused login as a closed connection; the broker logs why.
    broker_log = compose("logs", "--no-color", *KAFKA_NODES)
    refusals = [line for line in broker_log.splitlines() if "Failed authentication with" in line]
    for reason in ("invalid credentials with SASL mechanism SCRAM-SHA-512", "SSL handshake failed"):
        if not any(reason in line for line in refusals):
            raise SystemExit(f"the broker's log shows no refused login for {reason!r}")
    sent = sorted(tuple(o) for o in report["offsets"])

    def all_landed() -> list[list[str]]:
        rows = psql(DEVICE_ROWS, topic=topic, customer=customer)
        return rows if len(rows) >= count else []

    landed = poll(f"the device's {count} readings landed", all_landed, 600)
    if sorted((int(p), int(o)) for p, o in landed) != sent:
        raise SystemExit(f"device readings landed as {sorted(landed)}, sent {sent}")
    print(f"    each of the device's {count} readings landed exactly once", flush=True)
    compose("exec", "-T", KAFKA_NODES[0], "heartbeat-ops", "devices", "revoke", name)
    refused = _device_client(state, "refused", topic)
    print(f"    after devices revoke: {refused['refused']}", flush=True)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


MARK_ROW = """
INSERT INTO pipeline_metrics (query_id, query_name, batch_id, run_id, batch_time, input_rows,
    batch_duration_ms) VALUES (:'mark', 'readings', 1, :'mark', now(), 0, 0)
"""


def cmd_replica() -> None:
    """The read replica: streaming from the primary through its slot, Superset's `heartbeat`
    connection on it, a row committed on the primary visible there within a printed bound, and
    its lag recorded in pipeline_metrics by the notifier (README, "Read replica")."""
    streaming = psql("SELECT application_name, state FROM pg_stat_replication")
    if ["heartbeat_replica", "streaming"] not in streaming:
        raise SystemExit(f"the replica is not streaming: pg_stat_replication {streaming}")
    if psql("SELECT pg_is_in_recovery()", on="postgres-replica") != [["t"]]:
        raise SystemExit("postgres-replica is not a standby")
    metadata = os.environ.get("SUPERSET_DB_NAME", "superset")
    (uri,) = psql("SELECT sqlalchemy_uri FROM dbs WHERE database_name = 'heartbeat'",
                  database=metadata)[0]  # fmt: skip
    if "@postgres-replica:5432/" not in uri:
        raise SystemExit(f"Superset's heartbeat connection is not the replica: {uri}")
    print(f"    streaming; Superset's heartbeat connection: {uri}", flush=True)

    mark = f"compose-replica-{int(time.time())}"
    psql(MARK_ROW, mark=mark)
    began = time.monotonic()
    seen = "SELECT count(*) FROM pipeline_metrics WHERE query_id = :'mark'"
    poll("the primary's row on the replica",
         lambda: psql(seen, on="postgres-replica", mark=mark) == [["1"]], 30, 0.2)  # fmt: skip
    took = time.monotonic() - began
    print(f"    a row committed on the primary was on the replica after {took:.2f} s"
          " (bound 30 s, polled through docker exec)", flush=True)  # fmt: skip
    psql("DELETE FROM pipeline_metrics WHERE query_id = :'mark'", mark=mark)
    lag = "SELECT replica_lag_bytes, replica_lag_seconds FROM pipeline_metrics" \
          " WHERE query_name = 'replica' ORDER BY batch_time DESC LIMIT 1"  # fmt: skip
    poll("the notifier's replica lag row", lambda: bool(psql(lag)), 60, 2)
    print(f"    latest lag in pipeline_metrics (bytes, seconds): {psql(lag)[0]}", flush=True)


def _bundle_dashboards() -> list[str]:
    """The slugs of the bundle's dashboards (superset/bundle/dashboards/*.yaml)."""
    folder = os.path.join(ROOT, "superset", "bundle", "dashboards")
    slugs = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name)) as handle:
            slugs += re.findall(r"^slug: *(\S+)$", handle.read(), flags=re.MULTILINE)
    return slugs


def _people(*args: str) -> str:
    """`heartbeat-ops superset ...` where Superset is, as an operator runs it."""
    return compose("exec", "-T", "superset", "heartbeat-ops", "superset", *args)


def cmd_accounts() -> None:
    """A viewer made by `heartbeat-ops superset add-user` in the superset container: over HTTP
    against the published port it logs in through the form, sees both dashboards and every
    chart's data, and gets 403 for SQL Lab, Explore and every write (tests/superset/
    superset_api.py, the same check as tests/superset/test_people_accounts.py); after
    `remove-user` its login is refused."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "superset"))
    from superset_api import (
        PersonSession,
        SupersetClient,
        logs_in,
        viewer_over_http,
        viewer_problems,
    )

    url = f"http://127.0.0.1:{os.environ.get('SUPERSET_HOST_PORT', '18088')}"
    # The admin's password was generated into the stack's secrets volume (root-only file).
    admin_password = compose("exec", "-T", "postgres", "sed", "-n",
                             "s/^SUPERSET_ADMIN_PASSWORD=//p",
                             "/var/lib/heartbeat/secrets.env").strip()  # fmt: skip
    admin = SupersetClient(url, os.environ.get("SUPERSET_ADMIN_USERNAME", "admin"),
                           admin_password).login()  # fmt: skip
    name = f"compose-viewer-{int(time.time())}"
    added = _people("add-user", name, "--role", "viewer")
    passwords = re.findall(r"^password: (\S+)$", added, flags=re.MULTILINE)
    if len(passwords) != 1:
        raise SystemExit(f"add-user printed no single password line:\n{added}")
    password = passwords[0]
    listed = [line.split() for line in _people("list-users").splitlines()[1:] if line.strip()]
    if [name, "viewer"] not in [row[:2] for row in listed]:
        raise SystemExit(f"list-users does not show {name} as a viewer: {listed}")
    print(f"    add-user {name} --role viewer: a password printed once; listed", flush=True)
    slugs = _bundle_dashboards()
    report = viewer_over_http(url, name, password, admin, slugs)
    problems = viewer_problems(report, slugs)
    if problems:
        raise SystemExit(f"the viewer over HTTP: {problems}\n{json.dumps(report)}")
    charts = sum(len(statuses) - 2 for statuses in report["readable"].values())
    print(f"    the viewer logged in; listed {report['listed']}, {charts} chart queries 200; "
          f"403 for {', '.join([*report['refused'], *report['pages']])}", flush=True)  # fmt: skip
    _people("remove-user", name)
    if logs_in(url, name, password) or PersonSession(url).login(name, password):
        raise SystemExit(f"{name} still logs in after remove-user")
    print(f"    remove-user {name}: its login is refused (API and form)", flush=True)


# The secrets each long-running service's program holds (ops/with-secrets.sh keeps the rest out,
# HEARTBEAT_SECRETS in docker-compose.yml and superset/run.sh); an empty one (SMTP unset) is none.
HOLDS = {
    **{node: {"HEARTBEAT_KAFKA_ADMIN_PASSWORD"} for node in KAFKA_NODES},
    "stream-job": {"HEARTBEAT_APP_PASSWORD", "HEARTBEAT_KAFKA_JOB_PASSWORD"},
    "producer": {"HEARTBEAT_KAFKA_PRODUCER_PASSWORD"},
    "notifier": {"HEARTBEAT_NOTIFIER_PASSWORD", "HEARTBEAT_NOTIFIER_TOKEN",
                 "HEARTBEAT_KAFKA_NOTIFIER_PASSWORD"},
    "superset": {"SUPERSET_SECRET_KEY", "SUPERSET_ADMIN_PASSWORD", "SUPERSET_DB_PASSWORD",
                 "HEARTBEAT_READER_PASSWORD"},
    "spark-master": set(),
    "spark-worker": set(),
}  # fmt: skip
SECRET_NAME = re.compile(r"PASSWORD$|_TOKEN$|SECRET_KEY$")


def cmd_secrets() -> None:
    """Reads the environment of each container's first process (the program, after the
    entrypoint's exec) from the host's /proc: inside the container root may not read a process
    of another user there (no CAP_SYS_PTRACE). The secrets it holds are exactly its own."""
    checked = set()
    for c in containers():
        service = _service(c)
        if service not in HOLDS or c["State"]["Status"] != "running":
            continue
        with open(f"/proc/{c['State']['Pid']}/environ", encoding="utf-8") as environ:
            raw = environ.read()
        pairs = (entry.split("=", 1) for entry in raw.split("\0") if "=" in entry)
        held = {name for name, value in pairs if SECRET_NAME.search(name) and value}
        if held != HOLDS[service]:
            raise SystemExit(f"{c['Name'].lstrip('/')} holds {sorted(held)}, "
                             f"not {sorted(HOLDS[service])}")  # fmt: skip
        print(f"    {service}: {', '.join(sorted(held)) or 'no secret'}")
        checked.add(service)
    if checked != set(HOLDS):
        raise SystemExit(f"not running, not checked: {sorted(set(HOLDS) - checked)}")


def cmd_rss() -> None:
    """RSS, not `docker stats`' cgroup usage (which counts the page cache too)."""
    total = 0
    for c in containers():
        if c["State"]["Status"] != "running":
            continue
        rows = docker("top", c["Id"], "-o", "pid,rss").splitlines()[1:]  # PID, RSS in kB
        rss = sum(int(row.split()[1]) for row in rows) // 1024
        total += rss
        print(f"rss {c['Name'].lstrip('/'):<40} {rss:>6} MiB", flush=True)
    print(f"rss {'total':<40} {total:>6} MiB", flush=True)


def cmd_leftovers() -> None:
    label = f"label=com.docker.compose.project={PROJECT}"
    left = {
        "containers": docker("ps", "-a", "-q", "--filter", label).split(),
        "networks": docker("network", "ls", "-q", "--filter", label).split(),
        "volumes": docker("volume", "ls", "-q", "--filter", label).split(),
    }
    if any(left.values()):
        raise SystemExit(f"left behind by {PROJECT}: {left}")
    print(f"    nothing of project {PROJECT} is left", flush=True)


if __name__ == "__main__":
    commands = {
        "healthy": cmd_healthy,
        "pipeline": cmd_pipeline,
        "broker-loss": cmd_broker_loss,
        "kafka-rss": cmd_kafka_rss,
        "spark": cmd_spark,
        "notify": cmd_notify,
        "threshold": cmd_threshold,
        "devices": cmd_devices,
        "replica": cmd_replica,
        "accounts": cmd_accounts,
        "secrets": cmd_secrets,
        "rss": cmd_rss,
        "leftovers": cmd_leftovers,
    }
    commands[sys.argv[1]]()
