#!/usr/bin/env bash
# compose-test's browser check: the dashboard through the published Superset port, in headless
# Chromium, with the repository's own check (tests/superset/browser: Debian's chromium driven by
# playwright-core). Every chart of the bundle must render, none may show an error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BROWSER="$ROOT/tests/superset/browser"
cd "$ROOT"

bash "$BROWSER/install.sh"
# The admin password was generated into the stack's secrets volume (root-only file).
password="$(docker-compose exec -T postgres sed -n 's/^SUPERSET_ADMIN_PASSWORD=//p' \
  /var/lib/heartbeat/secrets.env)"
[ -n "$password" ] || { echo "no SUPERSET_ADMIN_PASSWORD in the stack's secrets" >&2; exit 1; }
charts="$(find "$ROOT/superset/bundle/charts" -name '*.yaml' | wc -l)"
mkdir -p "$ROOT/var/compose"
screenshot="$ROOT/var/compose/dashboard.png"

report="$(cd "$BROWSER" && env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$ROOT/var/compose" \
  SUPERSET_URL="http://127.0.0.1:${SUPERSET_HOST_PORT:-8088}" \
  SUPERSET_ADMIN_USERNAME="${SUPERSET_ADMIN_USERNAME:-admin}" \
  SUPERSET_ADMIN_PASSWORD="$password" EXPECTED_CHARTS="$charts" \
  SCREENSHOT="$screenshot" TIMEOUT_MS=120000 node dashboard.mjs)" || {
  echo "$report" >&2; echo "dashboard check failed" >&2; exit 1; }
python3 - "$report" "$charts" <<'PY'
import json, sys
report, expected = json.loads(sys.argv[1]), int(sys.argv[2])
charts = report["charts"]
bad = [c for c in charts if c["error"] or not c["rendered"]]
assert report["ok"] and len(charts) == expected and not bad, (report["problems"], bad)
print(f"    {len(charts)} charts rendered, none with an error "
      f"({report['timings_ms'].get('charts_rendered')} ms); screenshot var/compose/dashboard.png")
PY
