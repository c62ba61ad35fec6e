#!/usr/bin/env bash
# make compose-test: the whole stack in containers, end to end, then nothing left behind.
#
# Installs docker.io, docker-compose and debootstrap if missing; starts dockerd if none runs (and
# then stops it and undoes its host changes at the end); makes the base image; builds; up -d with
# two Spark workers and three Kafka nodes; waits until every service is healthy; publishes valid
# and invalid readings through the producer's container and checks each lands exactly once;
# checks on the Spark master's /json/ that the job runs on the standalone cluster; kills the
# Kafka node leading a readings partition under steady load and checks every acknowledged
# reading lands once, the job runs through and the node catches up (prints the stall); sends one alert event through the
# notifier to a webhook receiver container and verifies its signature; a kafka-python device with
# a `heartbeat-ops devices add` credential writes readings over SASL_SSL through the published
# device port (landed once) and is refused reading, alerts, topics, groups, bad logins, plaintext
# and, after `devices revoke`, logging in (tests/support/device_client.py); checks the read
# replica streams, Superset's connection points at it and a primary's row shows there within a
# printed bound, with its lag in pipeline_metrics; opens every dashboard
# through the published Superset port in headless Chromium; adds a viewer with `heartbeat-ops
# superset add-user` in the superset container and checks over HTTP that it sees both dashboards
# and is refused SQL Lab, Explore and every write, and after `remove-user` cannot log in; down -v;
# checks nothing of the project is left.
# Fails (non-zero) as soon as a service cannot start. Timings go to var/compose/timings.txt.
#
# Published ports (127.0.0.1 only) default clear of the native stack's (make test runs alongside
# in CI): docker-compose.yml's *_HOST_PORT defaults.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STATE="$ROOT/var/compose"
mkdir -p "$STATE"

export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-heartbeat-compose-test}"
export SUPERSET_HOST_PORT="${SUPERSET_HOST_PORT:-18088}"  # compose's default, for the browser check
# A non-default alert threshold: the threshold check sees the job in its container use it.
export HEARTBEAT_ALERT_HIGH_BPM="${HEARTBEAT_ALERT_HIGH_BPM:-130}"
# The device listener, published on loopback for the device check (README, "Devices from outside").
export HEARTBEAT_DEVICE_LISTENER="${HEARTBEAT_DEVICE_LISTENER:-127.0.0.1:19094}"
# Kafka nodes 2 and 3 publish theirs on the next ports (node N: port + N - 1; compose cannot add).
device_host="${HEARTBEAT_DEVICE_LISTENER%:*}" device_port="${HEARTBEAT_DEVICE_LISTENER##*:}"
export KAFKA_2_DEVICE_LISTENER="${KAFKA_2_DEVICE_LISTENER:-$device_host:$((device_port + 1))}"
export KAFKA_3_DEVICE_LISTENER="${KAFKA_3_DEVICE_LISTENER:-$device_host:$((device_port + 2))}"
export SPARK_WORKERS="${SPARK_WORKERS:-2}"
export COMPOSE_HTTP_TIMEOUT=300
# Secrets come from the stack's own first start, never from the caller's shell.
unset POSTGRES_PASSWORD PGPASSWORD HEARTBEAT_READER_PASSWORD SUPERSET_DB_PASSWORD \
      SUPERSET_SECRET_KEY SUPERSET_ADMIN_PASSWORD HEARTBEAT_KAFKA_ADMIN_PASSWORD \
      HEARTBEAT_KAFKA_JOB_PASSWORD HEARTBEAT_KAFKA_PRODUCER_PASSWORD HEARTBEAT_KAFKA_NOTIFIER_PASSWORD \
      HEARTBEAT_REPLICATION_PASSWORD
# The build trusts the host's CAs (a TLS-intercepting proxy's among them): docker/ca/README.md.
EXTRA_CA="${COMPOSE_EXTRA_CA:-/etc/ssl/certs/ca-certificates.crt}"

say() { printf '\n==> %s\n' "$*"; }
timings="$STATE/timings.txt"
: > "$timings"
timed() {  # timed LABEL command...: run it, record its wall time
  local label="$1" t0=$SECONDS; shift
  "$@"
  printf '%-28s %4ds\n' "$label" $((SECONDS - t0)) | tee -a "$timings"
}
check() { python3 "$ROOT/docker/compose_check.py" "$@"; }

finish() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ] && docker info >/dev/null 2>&1; then
    say "FAILED ($rc): state and last log lines (all logs: $STATE/failure-logs.txt)"
    docker-compose ps -a
    docker-compose logs --no-color --timestamps > "$STATE/failure-logs.txt" 2>&1
    docker-compose logs --no-color --tail=25 2>&1 | cut -c1-400
  fi
  if docker info >/dev/null 2>&1; then
    say "docker-compose down -v"
    docker-compose down -v --remove-orphans --timeout 60 || rc=1
    check leftovers || rc=1
  fi
  bash "$ROOT/docker/host.sh" stop-daemon || rc=1
  [ "$rc" -eq 0 ] && say "compose-test passed" || say "compose-test FAILED"
  exit "$rc"
}
trap finish EXIT

say "host: packages, daemon, base image"
timed "install packages" bash docker/host.sh install
timed "start dockerd" bash docker/host.sh start-daemon
timed "base image" bash docker/host.sh base-image
if [ -f "$EXTRA_CA" ]; then cp "$EXTRA_CA" docker/ca/build-extra-ca.pem; fi

say "docker-compose build"
timed "build" docker-compose build -q
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^(heartbeat|debian)' |
  sed 's/^/image /' | tee -a "$timings"

say "docker-compose up -d (--scale spark-worker=$SPARK_WORKERS)"
t0=$SECONDS
# A leftover project from an interrupted run would share its volumes: start clean.
docker-compose down -v --remove-orphans >/dev/null 2>&1 || true
# `up -d` waits for dependencies to be healthy, and forever if one crash-loops: run it aside and
# let the health check, which fails fast on a crash loop, decide.
docker-compose up -d --scale spark-worker="$SPARK_WORKERS" &
up_pid=$!
if ! UP_PID="$up_pid" check healthy; then kill "$up_pid" 2>/dev/null; wait "$up_pid" || true; exit 1; fi
wait "$up_pid"  # and `up -d` itself succeeded
printf '%-28s %4ds\n' "up -d to all healthy" $((SECONDS - t0)) | tee -a "$timings"
docker-compose ps

say "readings through the producer's container land exactly once"
timed "pipeline check" check pipeline
say "the job runs on the Spark standalone cluster"
check spark
say "a Kafka node killed under load: nothing lost or doubled, the job runs through, the node catches up"
timed "broker-loss check" check broker-loss
say "a setting from the caller's environment reaches the job in its container"
timed "threshold check" check threshold
say "one alert reaches a webhook receiver through the notifier, signed"
timed "notify check" check notify

say "each container's program holds its own secrets and no other"
check secrets

say "a device over SASL_SSL on $HEARTBEAT_DEVICE_LISTENER: writes readings, refused the rest"
timed "devices check" check devices

say "the read replica: streaming, Superset reads it, a primary's row shows there, lag recorded"
timed "replica check" check replica

say "the dashboard in headless Chromium, through 127.0.0.1:$SUPERSET_HOST_PORT"
timed "browser check" bash docker/browser-check.sh

say "a person's account: add-user in the superset container, the viewer over HTTP, remove-user"
timed "accounts check" check accounts

say "memory at steady load (RSS per container)"
check rss | tee -a "$timings"
check kafka-rss | tee -a "$timings"
