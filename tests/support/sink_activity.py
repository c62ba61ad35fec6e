"""What the job's database connection is doing right now, as PostgreSQL sees it: lets a test
SIGKILL the job exactly while its batch transaction is open."""

from __future__ import annotations

from tests.support.db import superuser_query

# The sink's connection (heartbeat-stream) inside a transaction, on a batch statement rather
# than an outbox one (which reads and marks published_at).
_COMMIT_OPEN = """
SELECT count(*) FROM pg_stat_activity
WHERE application_name = 'heartbeat-stream' AND datname = current_database()
  AND xact_start IS NOT NULL AND query NOT LIKE '%%published_at%%'
"""


def batch_transaction_open(stack) -> bool:
    return superuser_query(stack, _COMMIT_OPEN)[0][0] > 0
