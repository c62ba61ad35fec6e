"""Re-encrypt what Superset stores encrypted (its data connections' passwords and extras) from
the key it was written with to this stack's SUPERSET_SECRET_KEY.

A restored metadata database holds the backup's stack's ciphertexts; a stack that keeps its own
secrets cannot read them (`superset init` stops with "Invalid decryption key"), so
`heartbeat-ops restore` runs this (superset/run.sh reencrypt) with the backup's key on standard
input, never on a command line:

    printf '%s\n' "$PREVIOUS_KEY" | bash superset/run.sh reencrypt
"""

from __future__ import annotations

import sys


def encrypted_columns() -> dict[str, dict]:
    """table -> {column: its EncryptedType}, over every model Superset defines. Superset's own
    SecretsMigrator looks in `superset.db.metadata`, which holds no table in 6.1 (its models are
    declared on Flask-AppBuilder's Model): it then finds nothing and re-encrypts nothing, so
    `superset re-encrypt-secrets` exits 0 having done nothing. The models' own metadata has them."""
    from flask_appbuilder import Model
    from sqlalchemy_utils import EncryptedType

    found: dict[str, dict] = {}
    for name, table in Model.metadata.tables.items():
        for column_name, column in table.columns.items():
            if isinstance(column.type, EncryptedType):
                found.setdefault(name, {})[column_name] = column.type
    return found


def main() -> int:
    previous = sys.stdin.readline().rstrip("\n")
    if not previous:
        print("reencrypt: no previous key on standard input", file=sys.stderr)
        return 2
    from superset.app import create_app

    with create_app().app_context():
        from superset.utils.encrypt import SecretsMigrator

        columns = encrypted_columns()
        if not columns:
            print("reencrypt: found no encrypted column in Superset's models", file=sys.stderr)
            return 1
        migrator = SecretsMigrator(previous_secret_key=previous)
        migrator.discover_encrypted_fields = lambda: columns
        try:
            migrator.run()
        except Exception as error:  # the migrator raises a bare Exception
            print(f"reencrypt: {error!r} (is the key on stdin the backup's?)", file=sys.stderr)
            return 1
    tables = ", ".join(f"{t}.{'/'.join(c)}" for t, c in sorted(columns.items()))
    print(f"reencrypt: {tables} now use this stack's SUPERSET_SECRET_KEY")
    return 0


if __name__ == "__main__":
    sys.exit(main())
