"""Daily partitions of heart_rate_readings: made ahead of time, and retired whole by retention.

The SQL functions (sql/006) do the DDL as the migration owner; the job's role may only call
them. There is no DEFAULT partition: each batch transaction also ensures the partitions of the
days it is about to insert (ENSURE_FOR_BATCH), so a reading of a day nobody prepared for (a
device back online after a week) gets its partition in the same transaction instead of failing
the batch. Making them ahead keeps that DDL off the batch path on ordinary days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from psycopg2.extensions import connection

# Late readings of the last days and the next days' rows always find their partition ready.
DAYS_BACK = 3
DAYS_AHEAD = 2


def ensure_for(rows: str) -> str:
    """SQL that makes the partitions for the UTC days of `rows`' "timestamp" (a table, with
    any WHERE), run in the transaction that inserts them, before the insert."""
    return (
        "SELECT heartbeat_ensure_readings_partitions(ARRAY("
        f"SELECT DISTINCT (\"timestamp\" AT TIME ZONE 'UTC')::date FROM {rows}))"
    )


# In the batch transaction, before its valid rows move: the UTC days they fall on.
ENSURE_FOR_BATCH = ensure_for(
    "stage_messages WHERE sink_id = %(sink_id)s AND batch_id = %(batch_id)s AND reason IS NULL"
)


def days_around(today: date, back: int = DAYS_BACK, ahead: int = DAYS_AHEAD) -> list[date]:
    return [today + timedelta(days=offset) for offset in range(-back, ahead + 1)]


def ensure_ahead(conn: connection, today: date | None = None) -> int:
    """Make the partitions of today-DAYS_BACK .. today+DAYS_AHEAD (UTC) that are missing;
    returns how many were made."""
    today = today or datetime.now(UTC).date()
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT heartbeat_ensure_readings_partitions(%s::date[])", (days_around(today),)
        )
        return cur.fetchone()[0]


def drop_older_than(conn: connection, days: int) -> list[str]:
    """Detach and drop the partitions that end at least `days` days ago; returns their names.

    Whole days only: a row stays until its day's partition is entirely past the horizon, so
    raw readings are kept between `days` and `days + 1` days. The function refuses a horizon
    under 1 day, whoever calls it.
    """
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT heartbeat_drop_readings_partitions(now() - make_interval(days => %s))",
            (days,),
        )
        return [name for (name,) in cur.fetchall()]
