"""Whether the stage still holds what this job staged: a token in an UNLOGGED table (sql/021).

A PostgreSQL crash empties every UNLOGGED table, the stage and this one together. The sink
writes a token of its own before it stages anything, and each batch transaction checks it: a
token gone or replaced means the stage may have lost staged rows, and the commit must not
record their batch as done. The job then exits, and its next start has Spark run the batch
again from Kafka (runtime/replay_ahead.py).
"""

from __future__ import annotations

import uuid

from psycopg2.extensions import connection, cursor

_MARK = """
INSERT INTO stage_sentinel (sink_id, token) VALUES (%(sink_id)s, %(token)s)
ON CONFLICT (sink_id) DO UPDATE SET token = EXCLUDED.token, set_at = now()
"""

_TOKEN = "SELECT token FROM stage_sentinel WHERE sink_id = %(sink_id)s"


class StageLostError(RuntimeError):
    """The stage was emptied (a database crash) after this job staged rows into it."""


def mark(conn: connection, sink_id: str) -> str:
    """Write a new token for the sink, committed; call before staging anything."""
    token = uuid.uuid4().hex
    with conn, conn.cursor() as cur:
        cur.execute(_MARK, {"sink_id": sink_id, "token": token})
    return token


def check(cur: cursor, sink_id: str, token: str) -> None:
    """Inside the batch transaction: raise StageLostError unless the sink's token is `token`."""
    cur.execute(_TOKEN, {"sink_id": sink_id})
    row = cur.fetchone()
    if row is None or row[0] != token:
        raise StageLostError(
            f"sink {sink_id}: the stage was emptied since this job started staging (PostgreSQL"
            " crashed or was restored): the job stops, and its next start runs the batches"
            " Spark recorded but PostgreSQL did not commit again from Kafka"
        )
