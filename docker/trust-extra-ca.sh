#!/bin/sh
# Build-time only: trust the PEM certificates found in docker/ca/ (copied to $1), e.g. the CA of
# a TLS-intercepting proxy. A file may hold a whole bundle: it is split one certificate a file,
# because update-ca-certificates (and through it Java's truststore) takes one per file.
# With no file there, nothing changes.
set -eu
src="$1" dest=/usr/local/share/ca-certificates/heartbeat-extra
mkdir -p "$dest"
for file in "$src"/*.pem "$src"/*.crt; do
  [ -f "$file" ] || continue
  awk -v dir="$dest" -v base="$(basename "$file" | tr -c 'A-Za-z0-9\n' _)" '
    /-----BEGIN CERTIFICATE-----/ { n++; out = sprintf("%s/%s-%03d.crt", dir, base, n) }
    out { print > out }
    /-----END CERTIFICATE-----/ { close(out); out = "" }' "$file"
done
update-ca-certificates >/dev/null
echo "extra CA certificates trusted: $(ls "$dest" | wc -l)"
