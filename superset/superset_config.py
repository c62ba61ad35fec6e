"""Superset settings for heartbeat: every value comes from the environment, no secret lives here.

Loaded by Superset through SUPERSET_CONFIG_PATH (superset/run.sh sets it). The same variables
configure the native stack (supervisord passes them) and docker compose.
"""

from __future__ import annotations

import os
from urllib.parse import quote


def _env(name: str, default: str) -> str:
    """The variable, or `default` when unset or empty (as in the stack's settings model)."""
    return os.environ.get(name) or default


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
_pg_host = _env("HEARTBEAT_PG_HOST", "localhost")
_pg_port = _env("HEARTBEAT_PG_PORT", "5432")
SQLALCHEMY_DATABASE_URI = (
    "postgresql+psycopg2://"
    f"{quote(_env('SUPERSET_DB_USER', 'superset'), safe='')}:"
    f"{quote(_required('SUPERSET_DB_PASSWORD'), safe='')}"
    f"@{_pg_host}:{_pg_port}/{_env('SUPERSET_DB_NAME', 'superset')}"  # made by provisioning
)
# A small pool per gunicorn worker; pre-ping survives a PostgreSQL restart.
SQLALCHEMY_ENGINE_OPTIONS = {"pool_size": 5, "max_overflow": 5, "pool_pre_ping": True}

SUPERSET_WEBSERVER_ADDRESS = _env("SUPERSET_BIND_HOST", "127.0.0.1")
SUPERSET_WEBSERVER_PORT = int(_env("SUPERSET_PORT", "8088"))

# The dashboards refresh every DASHBOARD_REFRESH_SECONDS (their metadata.refresh_frequency).
# Chart results are cached for exactly that long, in files shared by every gunicorn worker, and
# auto-refresh fetches (reads the cache) rather than forces: however many analysts watch, each
# chart's query runs about once per refresh, and no one sees rows older than one refresh.
# The refresh button still forces a fresh query.
DASHBOARD_REFRESH_SECONDS = int(_env("HEARTBEAT_DASHBOARD_REFRESH_SECONDS", "10"))
DASHBOARD_AUTO_REFRESH_MODE = "fetch"
DATA_CACHE_CONFIG = {
    "CACHE_TYPE": "FileSystemCache",
    "CACHE_DIR": os.path.join(_env("SUPERSET_HOME", "/tmp/superset"), "cache", "chart-data"),
    "CACHE_DEFAULT_TIMEOUT": DASHBOARD_REFRESH_SECONDS,
    "CACHE_THRESHOLD": 5000,  # entries; older ones are dropped first
    "CACHE_KEY_PREFIX": "heartbeat_data_",
}
# Superset's own metadata is not cached: a re-imported bundle shows at once.
CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}

# Datasets over the rollups pick their table by the time range asked for (minutes for short
# ranges, hours beyond; see bundle/datasets): that choice is a Jinja template in their SQL.
FEATURE_FLAGS = {"ENABLE_TEMPLATE_PROCESSING": True}

# Relative time ranges end *now*, not at midnight: "Last day" must include today's live readings.
DEFAULT_RELATIVE_START_TIME = "now"
DEFAULT_RELATIVE_END_TIME = "now"

# Local files (uploads) go to SUPERSET_HOME, which run.sh points under var/ (Superset reads it).

LOG_LEVEL = _env("SUPERSET_LOG_LEVEL", "INFO")
