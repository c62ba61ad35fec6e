"""`heartbeat-ops superset add-user|list-users|remove-user`: people's Superset accounts.

The work is done by Superset itself (superset/people.py, run through superset/run.sh with
Superset's own interpreter and the stack's secrets), so users live where Superset keeps them, in
its metadata database. A password never appears on a command line: it is generated here (or read
from standard input) and handed to Superset on its standard input.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys

from .config import ROOT, load

ROLE_CHOICES = ("viewer", "editor", "admin")
ROLE_HELP = (
    "viewer: both dashboards and nothing else (no SQL Lab, no chart or dataset editing);"
    " editor: Superset's Alpha (charts, datasets, no user management);"
    " admin: Superset's Admin"
)


def run_people(args: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """superset/people.py in Superset's interpreter, with the stack's environment."""
    environment = {**os.environ, **load().environment()}
    return subprocess.run(
        ["bash", str(ROOT / "superset" / "run.sh"), "people", *args],
        input=stdin,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _relay(result: subprocess.CompletedProcess[str]) -> int:
    """Superset's own answer (its last lines), or why it failed."""
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"error: {reason}", file=sys.stderr)
        return 1
    if lines:
        print(lines[-1])
    return 0


def cmd_add_user(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            print("error: --password-stdin read an empty password", file=sys.stderr)
            return 2
    else:
        password = secrets.token_urlsafe(18)
    status = _relay(run_people(["add", args.name, args.role], stdin=password + "\n"))
    if status == 0 and not args.password_stdin:
        print(f"password: {password}")  # shown once; Superset keeps only its hash
    return status


def cmd_list_users(_: argparse.Namespace) -> int:
    result = run_people(["list"])
    if result.returncode != 0:
        return _relay(result)
    users = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    # Columns as wide as their longest value, a space at least between them: a long name never
    # runs into its roles.
    names = max([len("username"), *(len(u["username"]) for u in users)]) + 2
    roles_width = max([len("roles"), *(len(",".join(u["roles"])) for u in users)]) + 2
    print(f"{'username':<{names}}{'roles':<{roles_width}}{'active':<8}last login")
    for user in users:
        roles = ",".join(user["roles"])
        print(
            f"{user['username']:<{names}}{roles:<{roles_width}}{user['active']!s:<8}"
            f"{user['last_login'] or '-'}"
        )
    return 0


def cmd_remove_user(args: argparse.Namespace) -> int:
    return _relay(run_people(["remove", args.name]))


def add_commands(sub) -> None:
    people = sub.add_parser("superset", help="people's Superset accounts").add_subparsers(
        dest="superset_command", required=True
    )
    add = people.add_parser("add-user", help="create an account; prints its password once")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLE_CHOICES, required=True, help=ROLE_HELP)
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add.set_defaults(func=cmd_add_user)
    people.add_parser("list-users", help="every account and its roles").set_defaults(
        func=cmd_list_users
    )
    remove = people.add_parser("remove-user", help="delete an account")
    remove.add_argument("name")
    remove.set_defaults(func=cmd_remove_user)
