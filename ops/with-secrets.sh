#!/usr/bin/env sh
# Container entrypoint wrapper for docker compose: export the secrets generated on first run
# (`heartbeat-ops serve postgres` writes $HEARTBEAT_VAR_DIR/secrets.env, mode 0600, root only)
# unless the environment already sets them, then drop to $HEARTBEAT_RUN_AS (if set) and exec the
# command. Natively, heartbeat-ops hands supervisord the same values.
set -eu
file="${HEARTBEAT_VAR_DIR:-/var/lib/heartbeat}/secrets.env"
if [ -r "$file" ]; then
  while IFS='=' read -r key value; do
    case "$key" in ''|'#'*) continue ;; esac
    if [ -z "$(printenv "$key" || true)" ]; then export "$key=$value"; fi
  done < "$file"
fi
if [ -n "${HEARTBEAT_RUN_AS:-}" ] && [ "$(id -u)" = 0 ]; then
  # The user's own HOME, not root's: tools write there (gunicorn's control socket, caches).
  HOME="$(getent passwd "$HEARTBEAT_RUN_AS" | cut -d: -f6)" && export HOME
  exec setpriv --reuid="$HEARTBEAT_RUN_AS" --regid="$HEARTBEAT_RUN_AS" --init-groups "$@"
fi
exec "$@"
