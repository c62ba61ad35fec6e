"""The one check that stored minute rollups equal SQL over the raw readings they summarise.

Scoped to the customers a topic's readings belong to, over all their readings (from any topic:
tests may share customers) and all their stored rollups, so a missing, extra or wrong minute
shows up. test_batch_commit computes the expectation in Python instead, bins included.
"""

from __future__ import annotations

from psycopg2.extensions import cursor

_MISMATCHES = """
WITH customers AS (
    SELECT DISTINCT customer_id FROM heart_rate_readings WHERE kafka_topic = %(topic)s
), truth AS (
    SELECT customer_id, date_trunc('minute', "timestamp", 'UTC') AS minute, count(*)::bigint AS n,
           sum(heart_rate)::bigint AS total, min(heart_rate)::int AS lo, max(heart_rate)::int AS hi
    FROM heart_rate_readings JOIN customers USING (customer_id)
    GROUP BY 1, 2
), stored AS (
    SELECT customer_id, minute, readings::bigint AS n, sum_bpm::bigint AS total,
           min_bpm::int AS lo, max_bpm::int AS hi
    FROM heart_rate_minute JOIN customers USING (customer_id)
)
SELECT customer_id, minute, s.n, s.total, s.lo, s.hi, t.n, t.total, t.lo, t.hi
FROM stored s FULL JOIN truth t USING (customer_id, minute)
WHERE (s.n, s.total, s.lo, s.hi) IS DISTINCT FROM (t.n, t.total, t.lo, t.hi)
ORDER BY 1, 2
LIMIT 50
"""


def rollup_mismatches(cur: cursor, topic: str) -> list[tuple]:
    """(customer, minute, stored n/sum/min/max, from readings n/sum/min/max) that differ."""
    cur.execute(_MISMATCHES, {"topic": topic})
    return cur.fetchall()
