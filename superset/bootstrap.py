"""Make Superset match the code: migrate its metadata and sync its roles (with --migrate), ensure
the admin user, then import the asset bundle.

Run by superset/run.sh with Superset's own interpreter:

    python superset/bootstrap.py --migrate [BUNDLE_DIR]   what a start runs before gunicorn
    python superset/bootstrap.py [BUNDLE_DIR]             `run.sh import`: only admin and bundle

--migrate does what `superset db upgrade` and `superset init` do, in this process: each of those
commands loads the whole Superset app again (about 7 s of a start each).

The bundle (superset/bundle/*.yaml) is imported with Superset's ImportAssetsCommand, which
matches every object by uuid and overwrites it: a re-run duplicates nothing and changes nothing.
The data connection's host, port, database, user and password are taken from the environment at
import time, so no secret is ever written to the bundle or to disk. Any failure (an invalid YAML
key, a dangling uuid, an unreachable database) exits non-zero with the reason, which stops run.sh.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from urllib.parse import quote

import yaml

HERE = Path(__file__).resolve().parent


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name) or default
    if not value:
        raise SystemExit(f"bootstrap: {name} is not set")
    return value


def data_address() -> str:
    """HOST:PORT the dashboards read: the read replica when HEARTBEAT_PG_REPLICA names one
    (README, "Read replica"), else the primary. Superset's metadata stays on the primary."""
    replica = os.environ.get("HEARTBEAT_PG_REPLICA", "")
    if replica:
        return replica
    return f"{env('HEARTBEAT_PG_HOST', 'localhost')}:{env('HEARTBEAT_PG_PORT', '5432')}"


def reader_uri() -> str:
    """The heartbeat connection with a masked password (Superset stores the real one encrypted)."""
    return (
        f"postgresql+psycopg2://{quote(env('HEARTBEAT_READER_USER', 'heartbeat_reader'), safe='')}"
        f":XXXXXXXXXX@{data_address()}"
        f"/{quote(env('HEARTBEAT_PG_DATABASE', 'heartbeat'), safe='')}"
    )


def load_bundle(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(file name -> YAML text, database file name -> password), as the importer expects."""
    contents: dict[str, str] = {}
    passwords: dict[str, str] = {}
    for path in sorted(root.rglob("*.y*ml")):
        name = path.relative_to(root).as_posix()
        text = path.read_text()
        if name.startswith("databases/"):
            config = yaml.safe_load(text)
            config["sqlalchemy_uri"] = reader_uri()
            text = yaml.safe_dump(config, sort_keys=False)
            passwords[name] = env("HEARTBEAT_READER_PASSWORD")
        contents[name] = text
    if "metadata.yaml" not in contents:
        raise SystemExit(f"bootstrap: no metadata.yaml in {root}")
    return contents, passwords


def ensure_admin(security_manager) -> object:
    """Create the admin once; keep its password equal to SUPERSET_ADMIN_PASSWORD."""
    from werkzeug.security import check_password_hash

    username = env("SUPERSET_ADMIN_USERNAME", "admin")
    password = env("SUPERSET_ADMIN_PASSWORD")
    user = security_manager.find_user(username=username)
    if user is None:
        role = security_manager.find_role("Admin")
        if role is None:
            raise SystemExit("bootstrap: role Admin missing; run `superset init` first")
        user = security_manager.add_user(
            username=username,
            first_name="Heartbeat",
            last_name="Admin",
            email=env("SUPERSET_ADMIN_EMAIL", f"{username}@heartbeat.invalid"),
            role=role,
            password=password,
        )
        if not user:
            raise SystemExit(f"bootstrap: could not create Superset user {username}")
        print(
            f"bootstrap: created Superset user '{username}'; its password is "
            "SUPERSET_ADMIN_PASSWORD (natively in var/secrets.env)",
            flush=True,
        )
    elif not check_password_hash(user.password, password):
        security_manager.reset_password(user.id, password)
        print(f"bootstrap: reset the password of '{username}' to SUPERSET_ADMIN_PASSWORD")
    return user


def import_bundle(user, contents: dict[str, str], passwords: dict[str, str]) -> None:
    from superset.commands.importers.v1.assets import ImportAssetsCommand
    from superset.utils.core import override_user

    with override_user(user):
        ImportAssetsCommand(contents, passwords=passwords).run()


def explain(error: BaseException) -> str:
    """The importer wraps validation errors in ImportFailedError: dig out the per-file reasons."""
    reasons = []
    while error is not None:
        if hasattr(error, "normalized_messages"):
            reasons.append(str(error.normalized_messages()))
        else:
            reasons.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    return "; caused by ".join(reasons)


def summary() -> str:
    from superset.connectors.sqla.models import SqlaTable
    from superset.models.core import Database
    from superset.models.dashboard import Dashboard
    from superset.models.slice import Slice

    from superset import db

    counts = {
        model.__name__: db.session.query(model).count()
        for model in (Database, SqlaTable, Slice, Dashboard)
    }
    return ", ".join(f"{count} {name}" for name, count in counts.items())


def step(text: str) -> None:
    """The start's progress, in run.sh's format."""
    print(f"{time.strftime('%H:%M:%S', time.gmtime())} superset/bootstrap.py: {text}", flush=True)


def migrate_and_init() -> None:
    """`superset db upgrade`, then `superset init`: in the app context, without a new app."""
    from flask_migrate import upgrade

    from superset import appbuilder, security_manager

    step("superset db upgrade")
    upgrade()  # exits non-zero with Alembic's reason when a migration fails
    step("superset init (roles and permissions)")
    appbuilder.add_permissions(update_perms=True)
    security_manager.sync_role_definitions()


def main(argv: list[str]) -> int:
    migrate = "--migrate" in argv[1:]
    arguments = [arg for arg in argv[1:] if arg != "--migrate"]
    bundle = Path(arguments[0]) if arguments else HERE / "bundle"
    started = time.monotonic()
    contents, passwords = load_bundle(bundle)

    from superset.app import create_app

    app = create_app()
    with app.app_context():
        from superset import security_manager

        if migrate:
            migrate_and_init()
        step(f"ensure admin, import {bundle}")

        user = ensure_admin(security_manager)
        try:
            import_bundle(user, contents, passwords)
        except Exception as error:
            print(f"bootstrap: importing {bundle} FAILED: {explain(error)}", file=sys.stderr)
            return 1
        from people import ensure_viewer_role  # superset/people.py, beside this file

        print(f"bootstrap: {ensure_viewer_role(security_manager)}", flush=True)
        print(
            f"bootstrap: imported {len(contents) - 1} files from {bundle} in "
            f"{time.monotonic() - started:.1f}s; Superset now holds {summary()}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
