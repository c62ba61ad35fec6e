"""What the job's database connection is doing right now, as PostgreSQL sees it: lets a test
SIGKILL the job exactly while its batch transaction is open."""

from __future__ import annotations

import psycopg2

# The sink's connection (heartbeat-stream) inside a transaction, on a batch statement rather
# than an outbox one (which reads and marks published_at).
_COMMIT_OPEN = """
SELECT count(*) FROM pg_stat_activity
WHERE application_name = 'heartbeat-stream' AND datname = current_database()
  AND xact_start IS NOT NULL AND query NOT LIKE '%%published_at%%'
"""


def batch_transaction_open(stack) -> bool:
    dsn = stack.admin_dsn
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(_COMMIT_OPEN)
        return cur.fetchone()[0] > 0
