#!/usr/bin/env bash
# Host side of the compose stack, as root: the Debian packages, the Docker daemon, the base image.
#
#   docker/host.sh install        apt-get install docker.io docker-compose debootstrap if missing
#   docker/host.sh start-daemon   start dockerd unless one answers; remember the host's state
#   docker/host.sh stop-daemon    stop the dockerd *we* started and put the host back as it was
#   docker/host.sh base-image     make $BASE_IMAGE (debian:bookworm-slim) with debootstrap if missing
#
# Why the undo: dockerd adds iptables chains, sets the FORWARD policy to DROP, turns ip_forward on
# and creates a docker0 bridge. A daemon we did not start is never touched.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${HEARTBEAT_COMPOSE_STATE:-$ROOT/var/compose}"
BASE_IMAGE="${BASE_IMAGE:-debian:bookworm-slim}"
mkdir -p "$STATE"
say() { printf '==> %s\n' "$*"; }

install() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [ ${#missing[@]} -eq 0 ] && return 0
  say "apt-get install ${missing[*]}"
  # Packages must not start a daemon behind our back: policy-rc.d refuses service starts.
  local policy=/usr/sbin/policy-rc.d ours=""
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && ours=1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    "${missing[@]}" iptables >/dev/null
  [ -z "$ours" ] || rm -f "$policy"
}

daemon_answers() { timeout 10 docker info >/dev/null 2>&1; }

start_daemon() {
  if daemon_answers; then say "dockerd already running: using it, leaving it alone"; return 0; fi
  say "starting dockerd (log: $STATE/dockerd.log)"
  # What dockerd changes, recorded so that stop-daemon can put it back.
  iptables-save > "$STATE/iptables.before"
  cat /proc/sys/net/ipv4/ip_forward > "$STATE/ip_forward.before"
  if ip link show docker0 >/dev/null 2>&1; then touch "$STATE/docker0.before"; else rm -f "$STATE/docker0.before"; fi
  dockerd --pidfile "$STATE/dockerd.pid" > "$STATE/dockerd.log" 2>&1 &
  echo $! > "$STATE/dockerd.started-by-us"
  for _ in $(seq 120); do daemon_answers && { say "dockerd up"; return 0; }; sleep 0.5; done
  echo "dockerd did not answer within 60 s; see $STATE/dockerd.log" >&2
  tail -20 "$STATE/dockerd.log" >&2
  return 1
}

# Each table as it was: restored from the snapshot, or emptied (policies ACCEPT) if it had no
# rules then. iptables-restore -T flushes the one table before restoring it.
restore_iptables() {
  local table chain
  for table in filter nat; do
    if grep -q "^\*$table\$" "$STATE/iptables.before"; then
      iptables-restore -T "$table" < "$STATE/iptables.before"
    else
      iptables -t "$table" -F && iptables -t "$table" -X
      for chain in $(iptables -t "$table" -S | awk '$1 == "-P" {print $2}'); do
        iptables -t "$table" -P "$chain" ACCEPT
      done
    fi
  done
}

stop_daemon() {
  [ -f "$STATE/dockerd.started-by-us" ] || { say "dockerd was not started by us: left running"; return 0; }
  local pid; pid="$(cat "$STATE/dockerd.started-by-us")"
  say "stopping dockerd (pid $pid) and undoing its host changes"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { echo "dockerd did not stop; killing it" >&2; kill -KILL "$pid"; }
  fi
  restore_iptables
  sysctl -q -w net.ipv4.ip_forward="$(cat "$STATE/ip_forward.before")"
  if [ ! -f "$STATE/docker0.before" ] && ip link show docker0 >/dev/null 2>&1; then
    ip link delete docker0
  fi
  rm -f "$STATE/dockerd.started-by-us"
}

# The mirror apt already uses (deb822 sources or a one-line sources.list).
apt_mirror() {
  local uri
  uri="$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1)"
  [ -n "$uri" ] || uri="$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -1)"
  echo "${uri:-http://deb.debian.org/debian}"
}

base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then say "base image $BASE_IMAGE present"; return 0; fi
  local mirror dir; mirror="$(apt_mirror)"; dir="$(mktemp -d)"
  say "making $BASE_IMAGE with debootstrap from $mirror (about a minute)"
  debootstrap --variant=minbase bookworm "$dir" "$mirror" > "$STATE/debootstrap.log" 2>&1 ||
    { tail -20 "$STATE/debootstrap.log" >&2; rm -rf "$dir"; return 1; }
  # Same suites as the host's apt, security updates included; no caches in the image.
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s-security bookworm-security main\n' \
    "$mirror" "$mirror" "$mirror" > "$dir/etc/apt/sources.list"
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | docker import - "$BASE_IMAGE" >/dev/null
  rm -rf "$dir"
}

case "${1:-}" in
  install) install ;;
  start-daemon) start_daemon ;;
  stop-daemon) stop_daemon ;;
  base-image) base_image ;;
  *) echo "usage: $0 install|start-daemon|stop-daemon|base-image" >&2; exit 2 ;;
esac
