"""Personal baselines and `elevated_resting` episodes, from the hourly rollups only.

One pass (README, "Personal baseline"), set-based SQL in one transaction; before it touches
episodes it takes the sink's sink_progress row lock, so it serialises with the batches' own
transactions (which write episodes and events too) for milliseconds, not for the whole pass:
1. each customer's daily resting rate for the complete UTC days of the window
   (customer_resting_days): the RESTING_QUANTILE of the day's valid readings, read from the
   5-bpm histograms of the day's hours that have at least HEARTBEAT_BASELINE_HOUR_MIN_READINGS
   readings, once the day has HEARTBEAT_BASELINE_DAY_MIN_HOURS of them;
2. each customer's baseline (customer_baselines): the median daily resting rate over the
   HEARTBEAT_BASELINE_WINDOW_DAYS days before the last HEARTBEAT_BASELINE_ELEVATED_DAYS, once it
   has HEARTBEAT_BASELINE_MIN_DAYS of them;
3. episodes: an open one grows with each elevated day and resolves on the first complete day
   below its threshold; a run of elevated days ending yesterday, at least ELEVATED_DAYS long,
   opens one (or reopens the customer's last one within the cooldown).
Every statement writes only what differs, so a second pass changes nothing. Lifecycle events go
to the outbox in the same transaction and are published after the commit. The job runs a pass
on a timer (the first at its start); to run one pass:
    python -m heartbeat_stream.runtime.baseline
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg2
from kafka import KafkaProducer
from psycopg2.extensions import cursor

from heartbeat_contract.alerts import ELEVATED_RESTING, OPEN, SEVERITY

from .. import config as job_config
from ..sinks import alert_outbox

log = logging.getLogger("heartbeat.baseline")

# The day's resting rate: this quantile of its valid readings (README, "Personal baseline").
RESTING_QUANTILE = 0.10
_FIRST_BIN_BPM = 40  # heart_rate_hour.bpm_bins: 29 bins of 5 bpm from 40 (sql/007)
_BIN_BPM = 5
_DAY_BINS = ", ".join(f"sum(bpm_bins[{k}])" for k in range(1, 30))

_LOCK = "SELECT 1 FROM sink_progress WHERE sink_id = %(sink)s FOR UPDATE"

# 1. The window's complete days, each with its resting rate, saved where they differ; a window
# day that no longer qualifies (its hours were deleted) loses its resting rate. Incremental:
# `sources` sums each day's hours cheaply (no histograms), and only the days whose sums differ
# from what baseline_day_sources remembers of the last computation (or whose resting rate went
# missing, or that were judged under other settings) are recomputed from their histograms.
_RESTING_DAYS = f"""
WITH sources AS (
    SELECT customer_id, (hour AT TIME ZONE 'UTC')::date AS day, count(*)::int AS hours,
           sum(readings)::bigint AS readings, sum(sum_bpm)::bigint AS sum_bpm
    FROM heart_rate_hour
    WHERE hour >= %(first_at)s AND hour < %(today_at)s
    GROUP BY 1, 2
), changed AS (
    SELECT s.* FROM sources s
    LEFT JOIN baseline_day_sources k USING (customer_id, day)
    LEFT JOIN customer_resting_days r USING (customer_id, day)
    WHERE k.customer_id IS NULL
       OR (k.hours, k.readings, k.sum_bpm, k.rule, k.qualified)
          IS DISTINCT FROM (s.hours, s.readings, s.sum_bpm, %(rule)s, r.customer_id IS NOT NULL)
), days AS (
    SELECT h.customer_id, c.day, count(*)::int AS hours, ARRAY[{_DAY_BINS}] AS bins
    FROM changed c
    JOIN heart_rate_hour h ON h.customer_id = c.customer_id
         AND h.hour >= (c.day::timestamp AT TIME ZONE 'UTC')
         AND h.hour < ((c.day + 1)::timestamp AT TIME ZONE 'UTC')
    WHERE h.readings >= %(hour_min_readings)s
    GROUP BY 1, 2
    HAVING count(*) >= %(day_min_hours)s
), cumulative AS (
    SELECT d.customer_id, d.day, d.hours, b.i, b.n::float8 AS n,
           (sum(b.n) OVER (PARTITION BY d.customer_id, d.day ORDER BY b.i))::float8 AS cum,
           (sum(b.n) OVER (PARTITION BY d.customer_id, d.day))::float8 * %(quantile)s AS target
    FROM days d CROSS JOIN LATERAL unnest(d.bins) WITH ORDINALITY AS b(n, i)
), resting AS (
    SELECT DISTINCT ON (customer_id, day) customer_id, day, hours,
           -- interpolated within the bin; integer readings: bin k is [39.5 + 5k, 44.5 + 5k)
           ({_FIRST_BIN_BPM} - 0.5 + {_BIN_BPM} * (i - 1)
            + {_BIN_BPM} * (target - (cum - n)) / n)::real AS resting_bpm
    FROM cumulative
    WHERE n > 0 AND cum >= target
    ORDER BY customer_id, day, i
), saved AS (
    INSERT INTO customer_resting_days AS stored (customer_id, day, resting_bpm, hours)
    SELECT customer_id, day, resting_bpm, hours FROM resting
    ON CONFLICT (customer_id, day) DO UPDATE SET
        resting_bpm = EXCLUDED.resting_bpm, hours = EXCLUDED.hours
    WHERE (stored.resting_bpm, stored.hours) IS DISTINCT FROM (EXCLUDED.resting_bpm, EXCLUDED.hours)
    RETURNING 1
), dropped AS (
    DELETE FROM customer_resting_days r
    WHERE r.day >= %(first_day)s AND r.day < %(today)s
      AND (NOT EXISTS (SELECT FROM sources s WHERE s.customer_id = r.customer_id AND s.day = r.day)
           OR (EXISTS (SELECT FROM changed c WHERE c.customer_id = r.customer_id AND c.day = r.day)
               AND NOT EXISTS (SELECT FROM resting p
                               WHERE p.customer_id = r.customer_id AND p.day = r.day)))
    RETURNING 1
), remembered AS (
    INSERT INTO baseline_day_sources AS k
        (customer_id, day, hours, readings, sum_bpm, rule, qualified)
    SELECT c.customer_id, c.day, c.hours, c.readings, c.sum_bpm, %(rule)s,
           EXISTS (SELECT FROM resting p WHERE p.customer_id = c.customer_id AND p.day = c.day)
    FROM changed c
    ON CONFLICT (customer_id, day) DO UPDATE SET
        hours = EXCLUDED.hours, readings = EXCLUDED.readings, sum_bpm = EXCLUDED.sum_bpm,
        rule = EXCLUDED.rule, qualified = EXCLUDED.qualified
    RETURNING 1
), forgotten AS (
    DELETE FROM baseline_day_sources k
    WHERE k.day < %(first_day)s
       OR NOT EXISTS (SELECT FROM sources s WHERE s.customer_id = k.customer_id AND s.day = k.day)
    RETURNING 1
)
SELECT (SELECT count(*) FROM saved) + (SELECT count(*) FROM dropped),
       (SELECT count(*) FROM remembered), (SELECT count(*) FROM forgotten)
"""

# 2. Baselines (computed_at changes only with the figures); a customer without enough days
# loses theirs.
_BASELINES = """
WITH computed AS (
SELECT w.customer_id, w.baseline_bpm, w.days, l.day AS latest_day, l.resting_bpm AS latest_bpm
FROM (
    SELECT customer_id, count(*)::int AS days,
           (percentile_cont(0.5) WITHIN GROUP (ORDER BY resting_bpm))::real AS baseline_bpm
    FROM customer_resting_days
    WHERE day >= %(first_day)s AND day < %(judged_day)s
    GROUP BY customer_id
    HAVING count(*) >= %(min_days)s
) w
JOIN LATERAL (
    SELECT day, resting_bpm FROM customer_resting_days r
    WHERE r.customer_id = w.customer_id AND r.day < %(today)s
    ORDER BY day DESC LIMIT 1
) l ON true
), saved AS (
INSERT INTO customer_baselines AS stored
    (customer_id, baseline_bpm, days, latest_day, latest_bpm, computed_at)
SELECT customer_id, baseline_bpm, days, latest_day, latest_bpm, %(now)s FROM computed
ON CONFLICT (customer_id) DO UPDATE SET
    baseline_bpm = EXCLUDED.baseline_bpm, days = EXCLUDED.days,
    latest_day = EXCLUDED.latest_day, latest_bpm = EXCLUDED.latest_bpm,
    computed_at = EXCLUDED.computed_at
WHERE (stored.baseline_bpm, stored.days, stored.latest_day, stored.latest_bpm)
      IS DISTINCT FROM (EXCLUDED.baseline_bpm, EXCLUDED.days, EXCLUDED.latest_day,
                        EXCLUDED.latest_bpm)
RETURNING 1
), dropped AS (
DELETE FROM customer_baselines b
WHERE NOT EXISTS (SELECT FROM computed p WHERE p.customer_id = b.customer_id)
RETURNING 1
)
SELECT (SELECT count(*) FROM saved) + (SELECT count(*) FROM dropped)
"""

# The customer, muted, then alert_outbox.EpisodeFigures' fields in order.
_EPISODE_COLUMNS = (
    "customer_id", "muted", "started_at", "ended_at", "last_reading_at", "readings", "revision",
    "extreme_bpm", "threshold_bpm", "baseline_bpm",
)  # fmt: skip


def _returning(alias: str) -> str:
    return ", ".join(f"{alias}.{column}" for column in _EPISODE_COLUMNS)


# 3a. Open episodes, recomputed from their days: elevated days (at the episode's own threshold)
# from its start up to the first complete day below it after its last elevated day, which
# resolves it (ended_at: the end of that day).
_FOLLOW_OPEN = f"""
WITH open AS (
    SELECT id, customer_id, (started_at AT TIME ZONE 'UTC')::date AS first_day,
           (last_reading_at AT TIME ZONE 'UTC')::date AS after_day, threshold_bpm
    FROM heart_rate_alerts
    WHERE sink_id = %(sink)s AND kind = %(kind)s AND ended_at IS NULL
), below AS (
    SELECT o.id, min(r.day) AS day
    FROM open o
    JOIN customer_resting_days r ON r.customer_id = o.customer_id AND r.day >= o.after_day
         AND r.day < %(today)s AND r.resting_bpm < o.threshold_bpm
    GROUP BY o.id
), figures AS (
    SELECT o.id, b.day AS below_day, count(*)::int AS days,
           round(max(r.resting_bpm))::smallint AS extreme_bpm, max(r.day) AS last_day
    FROM open o
    LEFT JOIN below b ON b.id = o.id
    JOIN customer_resting_days r ON r.customer_id = o.customer_id AND r.day >= o.first_day
         AND r.day < coalesce(b.day, %(today)s) AND r.resting_bpm >= o.threshold_bpm
    GROUP BY o.id, b.day
), changed AS (
    SELECT id, days, extreme_bpm,
           ((last_day + 1)::timestamp AT TIME ZONE 'UTC') AS last_reading_at,
           ((below_day + 1)::timestamp AT TIME ZONE 'UTC') AS ended_at
    FROM figures
)
UPDATE heart_rate_alerts a SET
    readings = c.days, extreme_bpm = c.extreme_bpm, last_reading_at = c.last_reading_at,
    ended_at = c.ended_at, updated_at = now()
FROM changed c
WHERE a.id = c.id
  AND (a.readings, a.extreme_bpm, a.last_reading_at, a.ended_at)
      IS DISTINCT FROM (c.days, c.extreme_bpm, c.last_reading_at, c.ended_at)
RETURNING {_returning("a")}
"""

# 3b. Runs of elevated days (at the current baseline + margin) that end yesterday and are long
# enough, for customers with baseline alerts on and no open episode of the kind: within the
# cooldown of the customer's last episode, that episode reopens (an `open` of its next
# revision, muted as the customer is now); else one opens.
_OPEN = f"""
WITH elevated AS (
    SELECT r.customer_id, r.day, r.resting_bpm, b.baseline_bpm,
           b.baseline_bpm + %(margin)s AS threshold_bpm,
           r.day - (row_number() OVER (PARTITION BY r.customer_id ORDER BY r.day))::int AS island
    FROM customer_resting_days r
    JOIN customer_baselines b USING (customer_id)
    WHERE r.day >= %(first_day)s AND r.day < %(today)s
      AND r.resting_bpm >= b.baseline_bpm + %(margin)s
), runs AS (
    SELECT customer_id, min(day) AS first_day, max(day) AS last_day, count(*)::int AS days,
           round(max(resting_bpm))::smallint AS extreme_bpm,
           min(baseline_bpm) AS baseline_bpm, min(threshold_bpm)::real AS threshold_bpm
    FROM elevated
    GROUP BY customer_id, island
    HAVING max(day) = %(yesterday)s AND count(*) >= %(elevated_days)s
), candidates AS (
SELECT runs.*, (runs.first_day::timestamp AT TIME ZONE 'UTC') AS started_at,
       ((runs.last_day + 1)::timestamp AT TIME ZONE 'UTC') AS last_reading_at,
       coalesce(s.muted_until > %(now)s, false) AS muted, latest.id AS latest_id,
       latest.ended_at AS latest_ended_at
FROM runs
LEFT JOIN customer_alert_settings s USING (customer_id)
LEFT JOIN LATERAL (
    SELECT id, ended_at FROM heart_rate_alerts a
    WHERE a.sink_id = %(sink)s AND a.customer_id = runs.customer_id AND a.kind = %(kind)s
    ORDER BY a.started_at DESC LIMIT 1
) latest ON true
WHERE coalesce(s.baseline_alerts, true)
  AND (latest.id IS NULL OR latest.ended_at IS NOT NULL)
), reopened AS (
UPDATE heart_rate_alerts a SET
    ended_at = NULL, revision = a.revision + 1, last_reading_at = c.last_reading_at,
    muted = c.muted, updated_at = now()
FROM candidates c
WHERE a.id = c.latest_id
  AND c.latest_ended_at >= c.started_at - make_interval(secs => %(cooldown)s)
RETURNING {_returning("a")}
), opened AS (
INSERT INTO heart_rate_alerts (sink_id, customer_id, kind, severity, started_at, extreme_bpm,
    readings, last_reading_at, muted, threshold_bpm, baseline_bpm)
SELECT %(sink)s, customer_id, %(kind)s, %(severity)s, started_at, extreme_bpm, days,
       last_reading_at, muted, threshold_bpm, baseline_bpm
FROM candidates
WHERE latest_id IS NULL
   OR latest_ended_at < started_at - make_interval(secs => %(cooldown)s)
ON CONFLICT ON CONSTRAINT heart_rate_alerts_episode DO NOTHING
RETURNING {_returning("heart_rate_alerts")}
)
SELECT 'opened', opened.* FROM opened
UNION ALL
SELECT 'reopened', reopened.* FROM reopened
"""


@dataclass(frozen=True)
class PassSummary:
    resting_days: int  # rows written or removed
    recomputed_days: int  # days whose hours changed since the last pass, computed again
    baselines: int  # rows written or removed
    opened: int
    reopened: int
    resolved: int
    events: int
    seconds: float
    locked_seconds: float  # of which with the sink_progress row lock held (before the commit)


def _rule_signature(config: job_config.JobConfig) -> str:
    """The settings a day's resting rate depends on: a day judged under others is recomputed."""
    return (
        f"q={RESTING_QUANTILE} hour>={config.baseline_hour_min_readings}"
        f" day>={config.baseline_day_min_hours}"
    )


def _follow_open(cur: cursor, params: dict[str, object]) -> list[tuple]:
    """Grow or resolve the open episodes; returns the rows of those that resolved now."""
    cur.execute(_FOLLOW_OPEN, params)
    return [row for row in cur.fetchall() if row[3] is not None]


def run_pass(
    cur: cursor, config: job_config.JobConfig, sink_id: str, now: datetime
) -> tuple[PassSummary, list[dict[str, object]]]:
    """One pass inside the caller's transaction, judged as of `now`; returns what it changed
    and the events it recorded in the outbox."""
    started = time.monotonic()
    today: date = now.astimezone(UTC).date()
    first_day = today - timedelta(days=config.baseline_elevated_days + config.baseline_window_days)
    params: dict[str, object] = {
        "sink": sink_id,
        "kind": ELEVATED_RESTING,
        "severity": SEVERITY[ELEVATED_RESTING],
        "now": now,
        "today": today,
        "yesterday": today - timedelta(days=1),
        "first_day": first_day,
        "judged_day": today - timedelta(days=config.baseline_elevated_days),
        "first_at": datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC),
        "today_at": datetime(today.year, today.month, today.day, tzinfo=UTC),
        "hour_min_readings": config.baseline_hour_min_readings,
        "day_min_hours": config.baseline_day_min_hours,
        "quantile": RESTING_QUANTILE,
        "rule": _rule_signature(config),
        "min_days": config.baseline_min_days,
        "margin": config.baseline_margin_bpm,
        "elevated_days": config.baseline_elevated_days,
        "cooldown": config.alert_cooldown_seconds,
    }
    cur.execute(_RESTING_DAYS, params)
    days, recomputed, _forgotten = cur.fetchone()
    cur.execute(_BASELINES, params)
    (baselines,) = cur.fetchone()
    # Only the timer writes days and baselines; episodes and events are shared with the batches:
    # from here on (milliseconds, not the seconds above) the batches wait for this transaction.
    cur.execute(_LOCK, params)
    locked = time.monotonic()
    resolved = _follow_open(cur, params)
    cur.execute(_OPEN, params)
    rows = cur.fetchall()
    opened = sum(row[0] == "opened" for row in rows)
    reopened = len(rows) - opened
    resolved += _follow_open(cur, params)  # the figures of what just opened, at its threshold
    # An `open` for each episode opened, or reopened (its `resolved` went out), unless muted.
    events = [
        alert_outbox.episode_event(row[1], ELEVATED_RESTING, OPEN, row[3:])
        for row in rows
        if not row[2]
    ]
    for event in events:
        alert_outbox.record(cur, sink_id, event)
    events += [
        alert_outbox.record_resolved(cur, sink_id, row[0], ELEVATED_RESTING, row[2:])
        for row in resolved
        if not row[1]
    ]
    summary = PassSummary(
        days,
        recomputed,
        baselines,
        opened,
        reopened,
        len(resolved),
        len(events),
        time.monotonic() - started,
        time.monotonic() - locked,
    )
    return summary, events


def refresh(
    config: job_config.JobConfig,
    publisher: alert_outbox.OutboxPublisher | KafkaProducer | None = None,
    now: datetime | None = None,
) -> PassSummary:
    """One pass in its own transaction, then its events published (when given the job's
    publisher; a bare KafkaProducer is wrapped in a publisher of this job's outbox)."""
    if isinstance(publisher, KafkaProducer):
        publisher = alert_outbox.OutboxPublisher.for_job(config, producer=publisher)
    # Its own application_name: in pg_stat_activity the pass is not the sink's batch transaction.
    conn = psycopg2.connect(**{**config.libpq_params, "application_name": "heartbeat-baseline"})
    try:
        with conn, conn.cursor() as cur:
            summary, events = run_pass(cur, config, config.sink_id, now or datetime.now(UTC))
    finally:
        conn.close()
    if events and publisher is not None:
        publisher.publish()
    return summary


class BaselineTimer(threading.Thread):
    """A pass every `baseline_refresh_seconds`, the first at once; errors are logged only (the
    next pass catches up, and unpublished events go out with the next publish of any thread)."""

    def __init__(
        self, config: job_config.JobConfig, publisher: alert_outbox.OutboxPublisher | None = None
    ) -> None:
        super().__init__(name="baseline", daemon=True)
        self.config = config
        self.publisher = publisher or alert_outbox.OutboxPublisher.for_job(config)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                summary = refresh(self.config, self.publisher)
                log.info("baseline pass: %s", summary)
            except Exception as error:  # a timer thread must survive to retry
                log.warning("baseline pass failed: %s", error)
            self.stopped.wait(self.config.baseline_refresh_seconds)


def _main() -> None:
    logging.basicConfig(level=logging.INFO)
    config = job_config.load()
    publisher = alert_outbox.OutboxPublisher.for_job(config)
    try:
        print(refresh(config, publisher))
    finally:
        publisher.close()


if __name__ == "__main__":
    _main()
