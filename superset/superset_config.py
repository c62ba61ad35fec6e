"""Superset settings for heartbeat: every value comes from the environment, no secret lives here.

Loaded by Superset through SUPERSET_CONFIG_PATH (superset/run.sh sets it). The same variables
configure the native stack (supervisord passes them) and docker compose.
"""

from __future__ import annotations

import os
from urllib.parse import quote


def _required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise RuntimeError(f"{name} is not set (superset/run.sh reads it from var/secrets.env)")
    return value


# Signs sessions and encrypts the stored database passwords: generated once, kept in
# var/secrets.env. run.sh re-imports the connection password on every start, so a new key
# only costs the sessions and any secret saved through the UI.
SECRET_KEY = _required("SUPERSET_SECRET_KEY")

# Superset's own metadata (users, dashboards, charts) in the `superset` database, not in SQLite.
_pg_host = os.environ.get("PGHOST", "localhost")
_pg_port = os.environ.get("PGPORT", "5432")
SQLALCHEMY_DATABASE_URI = (
    "postgresql+psycopg2://"
    f"{quote(os.environ.get('SUPERSET_DB_USER', 'superset'), safe='')}:"
    f"{quote(_required('SUPERSET_DB_PASSWORD'), safe='')}"
    f"@{_pg_host}:{_pg_port}/{os.environ.get('SUPERSET_DB_NAME', 'superset')}"
)
# A small pool per gunicorn worker; pre-ping survives a PostgreSQL restart.
SQLALCHEMY_ENGINE_OPTIONS = {"pool_size": 5, "max_overflow": 5, "pool_pre_ping": True}

SUPERSET_WEBSERVER_ADDRESS = os.environ.get("SUPERSET_BIND_HOST", "127.0.0.1")
SUPERSET_WEBSERVER_PORT = int(os.environ.get("SUPERSET_PORT", "8088"))

# Live monitoring: no result cache (the dashboard refreshes every 10 s and must show fresh rows).
CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}

# Relative time ranges end *now*, not at midnight: "Last day" must include today's live readings.
DEFAULT_RELATIVE_START_TIME = "now"
DEFAULT_RELATIVE_END_TIME = "now"

# Local files (uploads) go to SUPERSET_HOME, which run.sh points under var/ (Superset reads it).

LOG_LEVEL = os.environ.get("SUPERSET_LOG_LEVEL", "INFO")
