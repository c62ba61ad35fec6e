#!/usr/bin/env sh
# Container entrypoint wrapper for docker compose: export the secrets generated on first run
# (`heartbeat-ops serve postgres` writes $HEARTBEAT_VAR_DIR/secrets.env, mode 0600, root only)
# unless the environment already sets them, then drop to $HEARTBEAT_RUN_AS (if set) and exec the
# command. Natively, heartbeat-ops hands supervisord the same values.
#
# HEARTBEAT_SECRETS (space-separated names) is what the program may hold: any other secret, from
# the file or from the environment, is left out, so a producer's container never holds the
# database superuser's password. Unset: every secret (the root services that provision them). A
# secret is a variable named *PASSWORD, *_TOKEN or *SECRET_KEY; the file's other values (the
# Kafka cluster id) are exported either way.
set -eu
is_secret() {
  case "$1" in *PASSWORD | *_TOKEN | *SECRET_KEY) return 0 ;; esac
  return 1
}
withheld() {  # a secret this program may not hold
  [ -n "${HEARTBEAT_SECRETS+set}" ] && is_secret "$1" || return 1
  case " $HEARTBEAT_SECRETS " in *" $1 "*) return 1 ;; esac
  return 0
}
file="${HEARTBEAT_VAR_DIR:-/var/lib/heartbeat}/secrets.env"
if [ -r "$file" ]; then
  while IFS='=' read -r key value; do
    case "$key" in ''|'#'*) continue ;; esac
    if [ -z "$(printenv "$key" || true)" ]; then export "$key=$value"; fi
  done < "$file"
fi
# Then every secret this program may not hold goes, exported just now or inherited alike.
for key in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p'); do
  if withheld "$key"; then unset "$key"; fi
done
if [ -n "${HEARTBEAT_RUN_AS:-}" ] && [ "$(id -u)" = 0 ]; then
  # The user's own HOME, not root's: tools write there (gunicorn's control socket, caches).
  HOME="$(getent passwd "$HEARTBEAT_RUN_AS" | cut -d: -f6)" && export HOME
  exec setpriv --reuid="$HEARTBEAT_RUN_AS" --regid="$HEARTBEAT_RUN_AS" --init-groups "$@"
fi
exec "$@"
