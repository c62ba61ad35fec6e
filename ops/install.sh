#!/usr/bin/env bash
# Installs what the native stack needs, once: Debian packages, the project virtualenv, JVM jars.
# Each part is skipped when its inputs (pyproject.toml, a pom) have not changed since it last ran.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VAR="${HEARTBEAT_VAR_DIR:-$ROOT/var}"
mkdir -p "$VAR"

fingerprint() { cat "$@" | sha256sum | cut -c1-16; }
say() { printf '==> %s\n' "$*"; }

install_debian_packages() {
  local missing=()
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  command -v runuser >/dev/null || missing+=(util-linux)
  python3.11 -c 'import ensurepip' 2>/dev/null || missing+=(python3.11-venv)  # for `-m venv`
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}; install them (as root) and re-run" >&2
    exit 1
  fi
  say "apt-get install ${missing[*]}"
  # We run a private cluster under var/: stop Debian from creating and starting its own on 5432.
  mkdir -p /etc/postgresql-common
  [ -f /etc/postgresql-common/createcluster.conf ] ||
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
}

install_venv() {
  local venv="$VAR/venv" stamp
  stamp="$(fingerprint "$ROOT/pyproject.toml")"
  [ -f "$venv/.installed-$stamp" ] && return 0
  say "project virtualenv ($venv)"
  [ -x "$venv/bin/python" ] || python3.11 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -e "$ROOT[native,dev]"
  rm -f "$venv"/.installed-* && touch "$venv/.installed-$stamp"
}

# install_jars NAME POM [artifactIds to keep]: resolve a pom's runtime jars into var/jars/NAME.
install_jars() {
  local name="$1" pom="$2" keep="${3:-}" dest="$VAR/jars/$1" stamp
  stamp="$(fingerprint "$pom")"
  [ -f "$dest/.installed-$stamp" ] && return 0
  say "Maven jars: $name"
  rm -rf "$dest" && mkdir -p "$dest"
  mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$dest" \
      -DincludeScope=runtime ${keep:+-DincludeArtifactIds=$keep}
  touch "$dest/.installed-$stamp"
}

install_debian_packages
install_venv
install_jars kafka "$ROOT/ops/maven/kafka-broker.pom.xml"
# Only what the pyspark wheel lacks: Spark's own jars, Scala and Hadoop come with the wheel.
install_jars spark "$ROOT/ops/maven/spark-connector.pom.xml" \
  "spark-sql-kafka-0-10_2.13,spark-token-provider-kafka-0-10_2.13,kafka-clients,commons-pool2,postgresql"
# Superset lives in its own virtualenv (its pins clash with the project's); see superset/install.sh.
if [ -f "$ROOT/superset/install.sh" ]; then bash "$ROOT/superset/install.sh"; fi
