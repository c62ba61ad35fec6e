#!/usr/bin/env bash
# Installs Superset 6.1.0 into its own virtualenv, var/superset-venv (called by ops/install.sh).
# Skipped when the pins (requirements.txt, constraints.txt) have not changed since the last run.
# The browser tooling of the dashboard test lives apart: tests/superset/browser/install.sh.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
VAR="${HEARTBEAT_VAR_DIR:-$ROOT/var}"
VENV="${SUPERSET_VENV:-$VAR/superset-venv}"

stamp="$(cat "$HERE/requirements.txt" "$HERE/constraints.txt" | sha256sum | cut -c1-16)"
[ -f "$VENV/.installed-$stamp" ] && exit 0

printf '==> %s\n' "Superset virtualenv ($VENV); the first install takes a few minutes"
[ -x "$VENV/bin/python" ] || python3.11 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -r "$HERE/requirements.txt" -c "$HERE/constraints.txt"
# Fail now, not at the first start, if the environment cannot load Superset and its driver.
"$VENV/bin/python" -c 'import superset.cli.main, psycopg2, rich, cachetools, gunicorn'

rm -f "$VENV"/.installed-* && touch "$VENV/.installed-$stamp"
