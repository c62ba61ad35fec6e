"""Create the databases and least-privilege login roles, then migrate. Safe to run every start.

An existing role is never altered: its password is checked instead, and a mismatch stops the
start with the name of the variable to fix (an ALTER here would silently break every other
client that still uses the old password).
"""

from __future__ import annotations

import psycopg2
from psycopg2 import sql

from . import alert_defaults, migrate
from .config import StackConfig, source_of

# Each stack role: the settings holding its name and its password.
STACK_ROLES = (
    ("pg_user", "pg_password"),
    ("reader_user", "reader_password"),
    ("superset_db_user", "superset_db_password"),
    ("notifier_user", "notifier_password"),
)
# Each stack role in the product's database: the settings naming it, the group role it joins.
DATABASE_ROLES = (
    ("pg_user", "pg_password", "heartbeat_writer"),
    ("reader_user", "reader_password", "heartbeat_readonly"),
    ("notifier_user", "notifier_password", "heartbeat_notifying"),
)


def _variable(setting: str) -> str:
    """The environment variable of a setting, for messages that say what to change."""
    return StackConfig.model_fields[setting].alias


class ConfigurationError(RuntimeError):
    """The configuration contradicts the running database; the message names the variable."""


# Superset's metadata database: provisioning creates it for SUPERSET_DB_USER.
SUPERSET_METADATA_DATABASE = "superset"
MAINTENANCE_DATABASE = "postgres"
# Databases the product must never be installed into: migrating one revokes CONNECT from PUBLIC
# there and fills it with the product's schema (the cluster's maintenance and template
# databases, and Superset's own).
RESERVED_DATABASES = (MAINTENANCE_DATABASE, "template0", "template1", SUPERSET_METADATA_DATABASE)
# What PUBLIC holds on the maintenance database in a fresh cluster.
PUBLIC_MAINTENANCE_PRIVILEGES = ("CONNECT", "TEMPORARY")


def check_product_database(config: StackConfig) -> None:
    """The product database is one of its own, never a database the cluster or Superset owns."""
    name, variable = config.pg_database, _variable("pg_database")
    if name in RESERVED_DATABASES:
        raise ConfigurationError(
            f"{variable}={name!r} ({source_of(variable)}) names a database the stack must not"
            f" install its schema into ({', '.join(RESERVED_DATABASES)} are reserved). Unset"
            f" {variable} (default: heartbeat) or choose a database of the stack's own."
        )


def repair_maintenance_database(config: StackConfig) -> str:
    """Give PUBLIC back what an older provisioning run revoked on `postgres` (a stray
    PGDATABASE=postgres made it install the product there); nothing else is touched."""
    admin = _connect_as_superuser(config, MAINTENANCE_DATABASE)
    admin.autocommit = True
    restored = []
    try:
        with admin.cursor() as cur:
            for privilege in PUBLIC_MAINTENANCE_PRIVILEGES:
                cur.execute(
                    "SELECT has_database_privilege('public', %s, %s)",
                    (MAINTENANCE_DATABASE, privilege),
                )
                if not cur.fetchone()[0]:
                    cur.execute(
                        sql.SQL("GRANT {} ON DATABASE {} TO PUBLIC").format(
                            sql.SQL(privilege), sql.Identifier(MAINTENANCE_DATABASE)
                        )
                    )
                    restored.append(privilege)
    finally:
        admin.close()
    if not restored:
        return "nothing to repair"
    return f"restored {', '.join(restored)} on database {MAINTENANCE_DATABASE} to PUBLIC"


def check_role_names(config: StackConfig) -> None:
    """The stack's roles are distinct, unprivileged, and never the superuser."""
    names: dict[str, str] = {}
    for user_attr, _ in STACK_ROLES:
        name, user_var = getattr(config, user_attr), _variable(user_attr)
        if name == config.pg_superuser:
            raise ConfigurationError(
                f"{user_var}={name} names the superuser (POSTGRES_USER); the stack's roles must"
                f" be their own. Unset {user_var} (default) or choose another name."
            )
        if name in names:
            raise ConfigurationError(
                f"{user_var} and {names[name]} both name the role {name!r}; each needs its own."
            )
        names[name] = user_var


def _password_works(config: StackConfig, name: str, password: str) -> bool:
    try:
        psycopg2.connect(
            config.dsn(user=name, password=password, database=MAINTENANCE_DATABASE)
        ).close()
    except psycopg2.OperationalError as error:
        if "password authentication failed" in str(error):
            return False
        raise
    return True


def _ensure_login_role(cur, config: StackConfig, user_attr: str, password_attr: str) -> None:
    name, password = getattr(config, user_attr), getattr(config, password_attr)
    user_var, password_var = _variable(user_attr), _variable(password_attr)
    cur.execute("SELECT rolsuper, rolcanlogin FROM pg_roles WHERE rolname = %s", (name,))
    row = cur.fetchone()
    if row is None:
        # psycopg2 binds the password client-side; the role name is quoted as an identifier.
        cur.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %s").format(
                sql.Identifier(name)
            ),
            (password,),
        )
        return
    superuser, can_login = row
    if superuser or not can_login:
        raise ConfigurationError(
            f"role {name!r} ({source_of(user_var)}) exists but is "
            f"{'a superuser' if superuser else 'not a login role'}; the stack will not change"
            f" it. Set {user_var} to a role of the stack's own (default: unset it)."
        )
    if not _password_works(config, name, password):
        raise ConfigurationError(
            f"role {name!r} exists and rejects the password from {source_of(password_var)}."
            f" Set {password_var} to that role's password, or unset it so the generated one in"
            " var/secrets.env is used. (PGPASSWORD/PGUSER are never read for the stack's roles.)"
        )


def _ensure_database(cur, name: str, owner: str | None = None) -> None:
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
    if cur.fetchone() is None:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner:
            statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        cur.execute(statement)


def _connect_as_superuser(config: StackConfig, database: str) -> psycopg2.extensions.connection:
    try:
        return psycopg2.connect(
            config.dsn(user=config.pg_superuser, password=config.pg_superuser_password,
                       database=database)
        )  # fmt: skip
    except psycopg2.OperationalError as error:
        if "password authentication failed" in str(error):
            raise ConfigurationError(
                f"PostgreSQL rejects the superuser {config.pg_superuser!r} with the password from"
                f" {source_of('POSTGRES_PASSWORD')}. Set POSTGRES_PASSWORD to the cluster's"
                " superuser password, or unset it to use the generated one."
            ) from None
        raise


def bootstrap(config: StackConfig) -> list[str]:
    """Roles, databases, migrations; returns the names of migrations applied now."""
    check_product_database(config)
    check_role_names(config)
    repair_maintenance_database(config)  # the roles' password checks connect there
    admin = _connect_as_superuser(config, MAINTENANCE_DATABASE)
    admin.autocommit = True  # CREATE DATABASE refuses to run inside a transaction
    try:
        with admin.cursor() as cur:
            _ensure_database(cur, config.pg_database)
            _ensure_login_role(cur, config, "superset_db_user", "superset_db_password")
            _ensure_database(cur, config.superset_db_name, owner=config.superset_db_user)
    finally:
        admin.close()

    applied = migrate.apply_all(config.admin_dsn)

    with (
        psycopg2.connect(config.admin_dsn) as conn,
        conn.cursor() as cur,
    ):
        database = sql.Identifier(config.pg_database)
        cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
        for user_attr, password_attr, group in DATABASE_ROLES:
            cur.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    database, sql.Identifier(group)
                )
            )
            _ensure_login_role(cur, config, user_attr, password_attr)
            cur.execute(
                sql.SQL("GRANT {} TO {}").format(
                    sql.Identifier(group), sql.Identifier(getattr(config, user_attr))
                )
            )
        # Belt and braces: even a mistaken grant cannot let the dashboard's role write.
        cur.execute(
            sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                sql.Identifier(config.reader_user)
            )
        )
        # No JIT for the dashboards' queries: each runs in milliseconds, and the planner's cost
        # estimate of the customer picker (heart_rate_customer_priority) passes jit_above_cost,
        # so every customer dashboard visit waited ~60 ms for LLVM to compile it first.
        cur.execute(
            sql.SQL("ALTER ROLE {} SET jit = off").format(sql.Identifier(config.reader_user))
        )
        # The alert rules' global defaults, for the dashboards' effective thresholds.
        alert_defaults.write(cur, config)
        # The raw readings' partitions around today exist before anything writes; the job keeps
        # them ahead from then on (sql/006, heartbeat_stream.sinks.partitions).
        cur.execute(
            "SELECT heartbeat_ensure_readings_partitions(ARRAY(SELECT d::date FROM generate_series("
            "(now() AT TIME ZONE 'UTC')::date - 3, (now() AT TIME ZONE 'UTC')::date + 2,"
            " interval '1 day') AS d))"
        )
    return [f"{m.version:03d}_{m.name}" for m in applied]
