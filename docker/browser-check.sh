#!/usr/bin/env bash
# compose-test's browser check: every dashboard of the bundle through the published Superset port,
# in headless Chromium, with the repository's own check (tests/superset/browser: Debian's chromium
# driven by playwright-core). Every chart of each must render, none may show an error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BROWSER="$ROOT/tests/superset/browser"
cd "$ROOT"

bash "$BROWSER/install.sh"
# The admin password was generated into the stack's secrets volume (root-only file).
password="$(docker-compose exec -T postgres sed -n 's/^SUPERSET_ADMIN_PASSWORD=//p' \
  /var/lib/heartbeat/secrets.env)"
[ -n "$password" ] || { echo "no SUPERSET_ADMIN_PASSWORD in the stack's secrets" >&2; exit 1; }
mkdir -p "$ROOT/var/compose"

# Every dashboard of the bundle, each with as many charts as its layout places.
for dashboard in "$ROOT"/superset/bundle/dashboards/*.yaml; do
  slug="$(sed -n 's/^slug: *//p' "$dashboard")"
  charts="$(grep -c 'chartId:' "$dashboard")"
  screenshot="$ROOT/var/compose/$slug.png"
  report="$(cd "$BROWSER" && env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$ROOT/var/compose" \
    SUPERSET_URL="http://127.0.0.1:${SUPERSET_HOST_PORT:-18088}" \
    SUPERSET_ADMIN_USERNAME="${SUPERSET_ADMIN_USERNAME:-admin}" \
    SUPERSET_ADMIN_PASSWORD="$password" DASHBOARD_SLUG="$slug" EXPECTED_CHARTS="$charts" \
    SCREENSHOT="$screenshot" TIMEOUT_MS=120000 node dashboard.mjs)" || {
    echo "$report" >&2; echo "dashboard $slug: check failed" >&2; exit 1; }
  python3 - "$report" "$charts" "$slug" <<'PY'
import json, sys
report, expected, slug = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
charts = report["charts"]
bad = [c for c in charts if c["error"] or not c["rendered"]]
assert report["ok"] and len(charts) == expected and not bad, (report["problems"], bad)
print(f"    {slug}: {len(charts)} charts rendered, none with an error "
      f"({report['timings_ms'].get('charts_rendered')} ms); screenshot var/compose/{slug}.png")
PY
done
