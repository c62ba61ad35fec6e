#!/usr/bin/env bash
# Browser tooling for the dashboard test, installed only when missing: Debian's chromium (the
# browser) and playwright-core from npm (the driver; it downloads no browser of its own).
# node_modules stays in tests/superset/browser/ (outside git). Idempotent; called by the test.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "chromium is missing: apt-get install -y chromium (as root), then re-run" >&2
    exit 1
  fi
  printf '==> %s\n' "apt-get install chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

command -v npm >/dev/null || { echo "npm is missing (Node.js 20+ is needed)" >&2; exit 1; }
stamp="$(sha256sum "$HERE/package-lock.json" | cut -c1-16)"
if [ ! -f "$HERE/node_modules/.installed-$stamp" ]; then
  printf '==> %s\n' "npm ci (playwright-core) in $HERE"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
  touch "$HERE/node_modules/.installed-$stamp"
fi
