"""The silent-device check: a driver thread of the job, every HEARTBEAT_SILENT_CHECK_SECONDS.

It is a thread, not part of the batch, because an idle topic produces no micro-batches, and a
device that stops sending must be reported all the same (README, "Silent devices"). Each round:
ask Kafka for the topic's end offsets, then in one transaction that holds the sink_progress row
lock (so it serialises with batches, exactly once): R from the committed read positions
(transforms/silence.read_up_to), the census of customers not yet reported, the outage decision,
the episodes and their outbox events. After the commit the outbox is published.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import psycopg2
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from psycopg2.extensions import connection, cursor

from heartbeat_contract.alerts import (
    ALL_CUSTOMERS,
    DEVICE_SILENT,
    INGESTION_SILENT,
    OPEN,
    SEVERITY,
    alert_event,
)
from heartbeat_contract.kafka_security import JOB, kafka_client_args

from ..config import JobConfig
from ..sinks import alert_outbox
from ..sinks.alert_outbox import OutboxPublisher
from ..sinks.database import Database
from ..transforms.silence import (
    Census,
    Decision,
    PartitionExtent,
    ReadPosition,
    decide,
    read_up_to,
)

log = logging.getLogger("heartbeat.silence")

ACTIVE_WINDOW = timedelta(hours=1)  # "active": heard within this long before R

# Also the latest R any round has judged at (sql/017): R never goes back.
_LOCK = """
SELECT silence_judged_up_to FROM sink_progress WHERE sink_id = %(sink_id)s FOR UPDATE
"""

_JUDGED = """
UPDATE sink_progress SET silence_judged_up_to = %(read_up_to)s WHERE sink_id = %(sink_id)s
"""

_POSITIONS = """
SELECT kafka_partition, next_offset, last_message_at FROM sink_read_positions
WHERE sink_id = %(sink_id)s AND kafka_topic = %(topic)s
"""

# Customers not yet reported (index customer_activity_not_silent): silent ones are not in it.
_CENSUS = """
SELECT count(*) FILTER (WHERE last_seen_at < %(silent_before)s),
       count(*) FILTER (WHERE last_seen_at < %(quiet_before)s),
       count(*) FILTER (WHERE last_seen_at >= %(active_since)s
                           OR last_seen_at < %(quiet_before)s),
       max(last_seen_at) FILTER (WHERE last_seen_at < %(silent_before)s)
FROM customer_activity
WHERE sink_id = %(sink_id)s AND silent_since IS NULL
"""

_LATEST_EPISODE = """
SELECT started_at, ended_at, last_reading_at, readings, revision, muted
FROM heart_rate_alerts
WHERE sink_id = %(sink_id)s AND customer_id = %(customer)s AND kind = %(kind)s
ORDER BY started_at DESC LIMIT 1
"""

_OPEN_OUTAGE = """
INSERT INTO heart_rate_alerts (sink_id, customer_id, kind, severity, started_at,
    last_reading_at, extreme_bpm, readings)
VALUES (%(sink_id)s, %(customer)s, %(kind)s, %(severity)s, %(started_at)s, %(started_at)s,
    NULL, %(readings)s)
ON CONFLICT ON CONSTRAINT heart_rate_alerts_episode DO NOTHING
RETURNING started_at
"""

_REOPEN_OUTAGE = """
UPDATE heart_rate_alerts SET ended_at = NULL, revision = revision + 1,
    readings = greatest(readings, %(readings)s), last_reading_at = %(last_reading_at)s,
    updated_at = now()
WHERE sink_id = %(sink_id)s AND customer_id = %(customer)s AND kind = %(kind)s
  AND started_at = %(started_at)s
RETURNING revision
"""

_OUTAGE_FIGURES = """
UPDATE heart_rate_alerts SET readings = greatest(readings, %(readings)s), updated_at = now()
WHERE sink_id = %(sink_id)s AND customer_id = %(customer)s AND kind = %(kind)s
  AND ended_at IS NULL
"""

_END_OUTAGE = """
UPDATE heart_rate_alerts SET ended_at = greatest(started_at, %(read_up_to)s), updated_at = now()
WHERE sink_id = %(sink_id)s AND customer_id = %(customer)s AND kind = %(kind)s
  AND ended_at IS NULL
RETURNING started_at, ended_at, last_reading_at, readings, revision
"""

# Each silent customer not yet reported: marked silent, and given a device_silent episode from
# their last reading; one whose previous device_silent episode ended within the cooldown before
# that reopens it instead (same alert_id, revision + 1, an `open` event of that revision: its
# `resolved` went out). Muted customers (per customer_alert_settings at the time of decision)
# get a muted episode, or reopen it muted. Returns the episodes, new or reopened, that publish
# an `open` event: (customer, started_at, last reading, revision).
_REPORT_EACH = """
WITH silent AS (
    SELECT a.customer_id, a.last_seen_at,
           coalesce(s.muted_until > %(decided_at)s, false) AS muted
    FROM customer_activity a
    LEFT JOIN customer_alert_settings s ON s.customer_id = a.customer_id
    WHERE a.sink_id = %(sink_id)s AND a.silent_since IS NULL
      AND a.last_seen_at < %(silent_before)s
), marked AS (
    UPDATE customer_activity a SET silent_since = %(decided_at)s
    FROM silent s
    WHERE a.sink_id = %(sink_id)s AND a.customer_id = s.customer_id
), previous AS (
    SELECT s.customer_id, s.last_seen_at, s.muted, h.id AS episode,
           h.ended_at IS NOT NULL
               AND s.last_seen_at <= h.ended_at + %(cooldown)s AS reopens
    FROM silent s
    LEFT JOIN LATERAL (
        SELECT id, ended_at FROM heart_rate_alerts
        WHERE sink_id = %(sink_id)s AND customer_id = s.customer_id AND kind = 'device_silent'
        ORDER BY started_at DESC LIMIT 1
    ) h ON true
), reopened AS (
    UPDATE heart_rate_alerts h
    SET ended_at = NULL, revision = h.revision + 1, last_reading_at = p.last_seen_at,
        muted = p.muted, updated_at = now()
    FROM previous p
    WHERE h.id = p.episode AND p.reopens
    RETURNING h.customer_id, h.started_at, h.last_reading_at, h.revision, h.muted
), opened AS (
    INSERT INTO heart_rate_alerts (sink_id, customer_id, kind, severity, started_at,
        last_reading_at, extreme_bpm, readings, muted)
    SELECT %(sink_id)s, customer_id, 'device_silent', %(severity)s, last_seen_at, last_seen_at,
        NULL, 0, muted
    FROM previous
    WHERE NOT coalesce(reopens, false)
    ON CONFLICT ON CONSTRAINT heart_rate_alerts_episode DO NOTHING
    RETURNING customer_id, started_at, last_reading_at, revision, muted
)
SELECT customer_id, started_at, last_reading_at, revision FROM opened WHERE NOT muted
UNION ALL
SELECT customer_id, started_at, last_reading_at, revision FROM reopened WHERE NOT muted
"""


class SilenceCheck:
    """One round of the check, with the Kafka clients and the connection it keeps."""

    def __init__(self, config: JobConfig, publisher: OutboxPublisher | None = None) -> None:
        self.config = config
        self.database = Database(config.libpq_params)
        self.publisher = publisher or OutboxPublisher.for_job(config)
        self._consumer: KafkaConsumer | None = None
        self._blocked = False  # R could not be told at the last round (logged once)
        self.silent_after = timedelta(seconds=config.silent_after_seconds)
        self.cooldown = timedelta(seconds=config.alert_cooldown_seconds)

    def run_once(self) -> int:
        """One round; returns the events it recorded (0 when skipped)."""
        asked_at = datetime.now(UTC)
        try:
            extents = self._extents()
        except KafkaError as error:
            self._close_consumer()
            log.warning("silence check skipped: cannot ask Kafka for end offsets: %s", error)
            return 0
        recorded = self.database.run(lambda conn: self._judge(conn, extents, asked_at))
        if recorded or self.publisher.behind:  # events wait: a failed publish, or left by a batch
            self.publisher.publish()
        return recorded

    def _extents(self) -> dict[int, PartitionExtent]:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                **kafka_client_args(self.config, JOB),
                enable_auto_commit=False,
                request_timeout_ms=10_000,
                client_id="heartbeat-silence-check",
            )
        topic = self.config.kafka_topic
        partitions = [TopicPartition(topic, p) for p in self._consumer.partitions_for_topic(topic)]
        if not partitions:
            return {}
        ends = self._consumer.end_offsets(partitions)
        beginnings = self._consumer.beginning_offsets(partitions)
        return {tp.partition: PartitionExtent(beginnings[tp], ends[tp]) for tp in partitions}

    def _close_consumer(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _judge(
        self, conn: connection, extents: dict[int, PartitionExtent], asked_at: datetime
    ) -> int:
        params: dict[str, object] = {
            "sink_id": self.config.sink_id,
            "topic": self.config.kafka_topic,
            "decided_at": asked_at,
            "cooldown": self.cooldown,
        }
        with conn, conn.cursor() as cur:
            cur.execute(_LOCK, params)
            progress = cur.fetchone()
            if progress is None:
                return 0  # the sink has committed nothing: nobody has been seen
            cur.execute(_POSITIONS, params)
            positions = {p: ReadPosition(n, at) for p, n, at in cur.fetchall()}
            until = read_up_to(positions, extents, asked_at, judged_before=progress[0])
            if until is None:
                if not self._blocked:
                    log.info("silence check waits: a partition holds messages never read yet")
                self._blocked = True
                return 0
            self._blocked = False
            cur.execute(_JUDGED, {**params, "read_up_to": until})
            params |= {
                "read_up_to": until,
                "silent_before": until - self.silent_after,
                "quiet_before": until - self.silent_after / 2,
                "active_since": until - ACTIVE_WINDOW,
            }
            cur.execute(_CENSUS, params)
            silent, quiet, active, latest_silent = cur.fetchone()
            census = Census(silent=silent, quiet=quiet, active=active)
            outage = self._latest(cur, params, ALL_CUSTOMERS, INGESTION_SILENT)
            outage_open = outage is not None and outage[1] is None
            after_outage = (
                outage is not None and not outage_open and (until - self.silent_after < outage[1])
            )
            decision = decide(census, self.config.silent_outage_share, outage_open, after_outage)
            events = self._act(cur, params, decision, census, outage, latest_silent)
        if events or decision != Decision():
            log.info(
                "silence check up to %s: %s -> %s, %d events", until, census, decision, len(events)
            )
        return len(events)

    def _act(
        self,
        cur: cursor,
        params: dict[str, object],
        decision: Decision,
        census: Census,
        outage: tuple | None,
        latest_silent: datetime | None,
    ) -> list[dict[str, object]]:
        """Carry out the decision (episodes opened, grown, ended) and record its events in the
        outbox; returns them."""
        events: list[dict[str, object]] = []
        feed = {**params, "customer": ALL_CUSTOMERS, "kind": INGESTION_SILENT}
        if outage is not None and outage[1] is None and not decision.end_outage:
            cur.execute(_OUTAGE_FIGURES, {**feed, "readings": census.silent})
        if decision.end_outage:
            cur.execute(_END_OUTAGE, feed)
            sink_id = self.config.sink_id
            events.append(
                alert_outbox.record_resolved(
                    cur, sink_id, ALL_CUSTOMERS, INGESTION_SILENT, cur.fetchone()
                )
            )
        opened: list[dict[str, object]] = []
        if decision.open_outage:
            opened.extend(self._open_outage(cur, feed, census, outage, latest_silent))
        if decision.report_each:
            opened.extend(self._report_each(cur, params))
        for event in opened:
            alert_outbox.record(cur, self.config.sink_id, event)
        return events + opened

    def _latest(
        self, cur: cursor, params: dict[str, object], customer: str, kind: str
    ) -> tuple | None:
        cur.execute(_LATEST_EPISODE, {**params, "customer": customer, "kind": kind})
        return cur.fetchone()

    def _open_outage(
        self,
        cur: cursor,
        feed: dict[str, object],
        census: Census,
        previous: tuple | None,
        latest_silent: datetime | None,
    ) -> list[dict[str, object]]:
        """One ingestion_silent episode from the newest last reading of the silent customers;
        within the cooldown of the previous one's end, that one reopens (revision + 1, and an
        `open` of that revision: its `resolved` went out)."""
        assert latest_silent is not None
        if previous is not None and latest_silent <= previous[1] + self.cooldown:
            started_at = previous[0]
            cur.execute(
                _REOPEN_OUTAGE,
                {
                    **feed,
                    "started_at": started_at,
                    "readings": census.silent,
                    "last_reading_at": latest_silent,
                },
            )
            (revision,) = cur.fetchone()
        else:
            started_at, revision = latest_silent, 0
            values = {**feed, "severity": SEVERITY[INGESTION_SILENT], "started_at": started_at}
            cur.execute(_OPEN_OUTAGE, {**values, "readings": census.silent})
            if cur.fetchone() is None:
                return []
        event = alert_event(
            customer_id=ALL_CUSTOMERS,
            kind=INGESTION_SILENT,
            status=OPEN,
            started_at=started_at,
            last_reading_at=latest_silent,
            readings=census.silent,
            revision=revision,
        )
        return [event]

    def _report_each(self, cur: cursor, params: dict[str, object]) -> list[dict[str, object]]:
        cur.execute(_REPORT_EACH, {**params, "severity": SEVERITY[DEVICE_SILENT]})
        return [
            alert_event(
                customer_id=customer,
                kind=DEVICE_SILENT,
                status=OPEN,
                started_at=started_at,
                last_reading_at=last_reading_at,
                revision=revision,
            )
            for customer, started_at, last_reading_at, revision in cur.fetchall()
        ]


class SilenceTimer(threading.Thread):
    """Runs the check every `silent_check_seconds`; a failed round is logged and retried at the
    next one (events recorded but not yet published go with the next publish)."""

    def __init__(self, config: JobConfig, publisher: OutboxPublisher | None = None) -> None:
        super().__init__(name="silence", daemon=True)
        self.config = config
        self.publisher = publisher
        self.stopped = threading.Event()

    def run(self) -> None:
        check = SilenceCheck(self.config, self.publisher)
        while not self.stopped.is_set():
            try:
                check.run_once()
            except (psycopg2.Error, KafkaError) as error:
                log.warning("silence check failed: %s", error)
            except Exception:  # the thread must outlive a bug in one round: log it loudly
                log.exception("silence check failed")
            self.stopped.wait(self.config.silent_check_seconds)
