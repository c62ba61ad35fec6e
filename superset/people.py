"""People's Superset accounts, and the `Heartbeat Viewer` role they may hold, as code.

Run with Superset's own interpreter (superset/run.sh people ...; `heartbeat-ops superset` calls it):

    python superset/people.py add NAME ROLE      password on standard input, never in argv
    python superset/people.py list               one JSON object per user
    python superset/people.py remove NAME
    python superset/people.py ensure-viewer-role

The viewer role is rebuilt from VIEWER_PERMISSIONS on every Superset start (bootstrap.py): what
it may do is exactly this list plus `datasource_access` on the datasets of the two dashboards.
No SQL Lab, no Explore (so no chart editing), no write on charts, datasets or dashboards, no
database access (so no other database and no other table of this one).

Accounts (add, list, remove) are Flask-AppBuilder's tables, which Superset uses as they are: those
three open them through Flask-AppBuilder alone, on the metadata database Superset's settings
name, in about 1.5 s where loading Superset's whole app takes 5 to 6. The role needs Superset's
models (its dashboards' datasets), so ensure-viewer-role loads Superset.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

VIEWER_ROLE = "Heartbeat Viewer"
VIEWER_DASHBOARDS = ("heart-rate-monitoring", "customer-detail", "pipeline-operations")
# heartbeat-ops' names for the roles people get.
ROLES = {"viewer": VIEWER_ROLE, "editor": "Alpha", "admin": "Admin"}

# (permission, view menu): what opening a dashboard and using its filters needs, nothing more.
VIEWER_PERMISSIONS = (
    ("can_read", "Dashboard"),  # the dashboard, its charts' and datasets' lists
    ("can_read", "Chart"),  # POST /api/v1/chart/data: the charts' queries
    ("can_dashboard", "Superset"),  # the dashboard page itself
    ("can_read", "DashboardFilterStateRestApi"),  # native filter state (URL keys)
    ("can_write", "DashboardFilterStateRestApi"),
    ("can_read", "DashboardPermalinkRestApi"),  # a shared link opens
    ("can_write", "DashboardPermalinkRestApi"),  # "Share": a permalink of the view
    ("can_time_range", "Api"),  # the Time range filter's label
    ("can_read", "CurrentUserRestApi"),  # /api/v1/me/: who is logged in
    ("can_userinfo", "UserDBModelView"),  # own profile
    ("resetmypassword", "UserDBModelView"),  # own password
    ("menu_access", "Dashboards"),
)


def viewer_datasource_permissions(security_manager) -> set:
    """`datasource_access` on every dataset of the viewer's dashboards (charts and filters)."""
    from superset.connectors.sqla.models import SqlaTable
    from superset.models.dashboard import Dashboard

    from superset import db

    dataset_ids: set[int] = set()
    for slug in VIEWER_DASHBOARDS:
        dashboard = db.session.query(Dashboard).filter_by(slug=slug).one_or_none()
        if dashboard is None:
            raise SystemExit(f"people: dashboard {slug!r} missing; import the bundle first")
        dataset_ids.update(chart.datasource_id for chart in dashboard.slices)
        metadata = json.loads(dashboard.json_metadata or "{}")
        for native_filter in metadata.get("native_filter_configuration", []):
            for target in native_filter.get("targets", []):
                if "datasetId" in target:
                    dataset_ids.add(int(target["datasetId"]))
    permissions = set()
    for dataset in db.session.query(SqlaTable).filter(SqlaTable.id.in_(dataset_ids)):
        pvm = security_manager.add_permission_view_menu("datasource_access", dataset.perm)
        permissions.add(pvm)
    return permissions


def ensure_viewer_role(security_manager) -> str:
    """Make the role hold exactly VIEWER_PERMISSIONS and its dashboards' datasets."""
    from superset import db

    role = security_manager.find_role(VIEWER_ROLE) or security_manager.add_role(VIEWER_ROLE)
    wanted = viewer_datasource_permissions(security_manager)
    for permission, view in VIEWER_PERMISSIONS:
        pvm = security_manager.find_permission_view_menu(permission, view)
        if pvm is None:
            raise SystemExit(f"people: Superset has no permission {permission} on {view}")
        wanted.add(pvm)
    added = [pvm for pvm in wanted if pvm not in role.permissions]
    removed = [pvm for pvm in role.permissions if pvm not in wanted]
    role.permissions = sorted(wanted, key=lambda pvm: pvm.id)
    db.session.commit()
    return f"role {VIEWER_ROLE!r}: {len(wanted)} permissions (+{len(added)}, -{len(removed)})"


def add_user(security_manager, name: str, role_key: str, password: str) -> str:
    role = security_manager.find_role(ROLES[role_key])
    if role is None:
        raise SystemExit(f"people: role {ROLES[role_key]!r} missing; run `superset init` first")
    if security_manager.find_user(username=name) is not None:
        raise SystemExit(f"people: {name!r} exists already (remove-user it first)")
    user = security_manager.add_user(
        username=name,
        first_name=name,
        last_name="(heartbeat)",
        email=f"{name}@heartbeat.invalid",
        role=role,
        password=password,
    )
    if not user:
        raise SystemExit(f"people: Superset refused to create {name!r}")
    return f"created {name!r} with role {role_key} ({role.name})"


def list_users(security_manager) -> list[dict[str, object]]:
    by_role = {role: key for key, role in ROLES.items()}
    return [
        {
            "username": user.username,
            "roles": sorted(by_role.get(role.name, role.name) for role in user.roles),
            "active": bool(user.active),
            "last_login": user.last_login.isoformat() if user.last_login else None,
        }
        for user in sorted(security_manager.get_all_users(), key=lambda u: u.username)
    ]


# Every foreign key to ab_user that does not cascade, from PostgreSQL's catalog (Superset's tables
# change between versions): what a removed person leaves behind must not block the removal.
_REFERENCES_TO_USERS = """
SELECT cl.relname, a.attname, NOT a.attnotnull
FROM pg_constraint con
JOIN pg_class cl ON cl.oid = con.conrelid
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = ANY (con.conkey)
WHERE con.contype = 'f' AND con.confrelid = 'ab_user'::regclass AND con.confdeltype <> 'c'
  AND cl.relname <> 'ab_user'
"""


def _release_references(session, user_id: int) -> int:
    """Before a user is deleted: audit marks (created_by, changed_by, a log's user) are kept
    without the name, set to NULL; rows that cannot exist without the user (their favourite
    tags) are deleted. Opening a dashboard leaves such marks (its filter state in key_value), so
    without this a person who ever used their account could not be removed. Returns rows touched.
    """
    from sqlalchemy import text

    quote = session.get_bind().dialect.identifier_preparer.quote
    touched = 0
    for table, column, nullable in session.execute(text(_REFERENCES_TO_USERS)).fetchall():
        target = f"{quote(table)} SET {quote(column)} = NULL" if nullable else None
        statement = (
            f"UPDATE {target} WHERE {quote(column)} = :user_id"
            if target
            else f"DELETE FROM {quote(table)} WHERE {quote(column)} = :user_id"
        )
        touched += session.execute(text(statement), {"user_id": user_id}).rowcount
    return touched


def remove_user(security_manager, name: str) -> str:
    if name == os.environ.get("SUPERSET_ADMIN_USERNAME", "admin"):
        raise SystemExit(f"people: {name!r} is the stack's own admin (bootstrap.py keeps it)")
    user = security_manager.find_user(username=name)
    if user is None:
        raise SystemExit(f"people: no user {name!r}")
    session = security_manager.session
    released = _release_references(session, user.id)
    session.delete(user)
    session.commit()  # one transaction: the marks are released only if the user goes too
    return f"removed {name!r} ({released} marks of theirs released)"


@contextmanager
def accounts() -> Iterator[object]:
    """Flask-AppBuilder's security manager over Superset's metadata database, without Superset:
    the settings are Superset's own file (SUPERSET_CONFIG_PATH), nothing is created (the tables
    and roles are `superset init`'s), and no view is registered."""
    from flask import Flask
    from flask_appbuilder import AppBuilder
    from flask_appbuilder.models.sqla.base import SQLA

    app = Flask("heartbeat-people")
    app.config.from_pyfile(os.environ["SUPERSET_CONFIG_PATH"])
    if app.config.get("DASHBOARD_TEMPLATE_ID") is not None:  # Superset's one new-user hook
        raise SystemExit("people: DASHBOARD_TEMPLATE_ID is set; accounts need Superset's app")
    app.config.update(FAB_CREATE_DB=False, FAB_ADD_SECURITY_VIEWS=False, FAB_UPDATE_PERMS=False)
    with app.app_context():
        yield AppBuilder(app, SQLA(app).session, update_perms=False).sm


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("add", "list", "remove", "ensure-viewer-role"):
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[1], argv[2:]
    password = sys.stdin.readline().rstrip("\n") if command == "add" else ""
    if command == "add" and (len(args) != 2 or args[1] not in ROLES or not password):
        raise SystemExit("people: add NAME viewer|editor|admin, with the password on stdin")
    if command == "remove" and len(args) != 1:
        raise SystemExit("people: remove NAME")

    if command == "ensure-viewer-role":
        from superset.app import create_app

        with create_app().app_context():
            from superset import security_manager

            print(ensure_viewer_role(security_manager))
        return 0
    with accounts() as security_manager:
        if command == "add":
            print(add_user(security_manager, args[0], args[1], password))
        elif command == "list":
            for user in list_users(security_manager):
                print(json.dumps(user))
        else:
            print(remove_user(security_manager, args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
