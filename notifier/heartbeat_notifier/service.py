"""The notifier's main loop: read alert events with its own consumer group, record a pending
delivery for each matching (channel, event) in the delivery log, and commit a partition's
offset past what is recorded (offsets.OffsetTracker); the dispatcher delivers from the log."""

from __future__ import annotations

import logging
import signal
import socket
import time
import uuid
from datetime import UTC, datetime

import psycopg2
from kafka import AsyncConsumerRebalanceListener, KafkaConsumer
from kafka.errors import CommitFailedError, KafkaError, RebalanceInProgressError, RetriableError
from kafka.structs import OffsetAndMetadata, TopicPartition

from heartbeat_contract.kafka_security import NOTIFIER, kafka_client_args

from . import api, failing_channels, ledger, pipeline_figures, replica_lag
from .config import NotifierConfig
from .database import Database
from .delivery import Dispatcher
from .events import Channel, MalformedEvent, parse_event
from .metrics import Metrics
from .offsets import OffsetTracker
from .retention import RetentionClock
from .watchdog import Watchdog

log = logging.getLogger(__name__)
CHANNELS_REFRESH_SECONDS = 1.0  # channels added or removed apply within about this long
RECORD_RETRY_SECONDS = 1.0  # the database away: reading pauses, recording is tried again
LAG_REFRESH_SECONDS = 5.0
TOPIC_WAIT_POLL_SECONDS = 0.5
TOPIC_WAIT_LOG_SECONDS = 10.0
STALL_SECONDS = 30.0  # events waiting and nothing read this long: replace the consumer
# A commit refused for these is tried again next round: the group is rebalancing (the member
# rejoins in its next poll), or the coordinator is moving or out of reach for a moment.
DEFERRED_COMMIT_ERRORS = (CommitFailedError, RebalanceInProgressError, RetriableError)


def commit_request(offsets: dict) -> dict[TopicPartition, OffsetAndMetadata]:
    """The tracker's (topic, partition) -> offset, as kafka-python's commit takes it."""
    return {TopicPartition(*tp): OffsetAndMetadata(at, "", -1) for tp, at in offsets.items()}


class _Rebalances(AsyncConsumerRebalanceListener):
    """Before a rebalance, commit what is recorded; after it, forget only the partitions this
    member no longer holds (kafka-python keeps the position of a partition handed back to the
    same member).

    kafka-python runs the listener on its IO thread, where a blocking commit raises (`Cannot
    block on net.run()`) and the notifier's poll would fail; so the listener is async and awaits
    a non-blocking commit. A commit that fails costs only re-reads: the log keeps one row per
    (channel, event)."""

    def __init__(self, consumer: KafkaConsumer, tracker: OffsetTracker, metrics: Metrics) -> None:
        self.consumer = consumer
        self.tracker = tracker
        self.metrics = metrics

    async def on_partitions_revoked(self, revoked) -> None:
        self.metrics.rebalances += 1
        offsets = self.tracker.committable()
        if offsets:
            try:
                await self.consumer.commit_async(commit_request(offsets))
                self.tracker.mark_committed(offsets)
            except KafkaError as error:
                log.warning("commit before a rebalance failed (%s): what moves is re-read from"
                            " the last commit", error)  # fmt: skip

    async def on_partitions_assigned(self, assigned) -> None:
        self.tracker.forget(self.tracker.partitions() - {tuple(tp) for tp in assigned})

    async def on_partitions_lost(self, lost) -> None:
        """Dropped from the group: the positions are gone and a commit would be refused."""
        self.tracker.forget(lost)


def stalled(waiting: int, paused: bool, idle_seconds: float) -> bool:
    """Events wait past the commit, reading is not paused, and nothing was read for
    STALL_SECONDS: the consumer is stuck, not busy."""
    return waiting > 0 and not paused and idle_seconds >= STALL_SECONDS


def holder_name(config: NotifierConfig) -> str:
    """Who leases deliveries: one notifier, the same across its restarts (its host, group and
    listen address, which only one process can bind), so a restart takes over its own rows at
    once and a peer waits for the lease to run out."""
    return f"{socket.gethostname()}/{config.notifier_group}/{config.notifier_listen}"


def _wait_until_visible(consumer: KafkaConsumer, topic: str) -> None:
    """Block until the broker shows this principal `topic`'s partitions. A group joined before
    that can be handed no partitions (kafka-python's assignor finds no metadata), and the
    notifier would then read nothing until a later rebalance; so it waits, not healthy, and says
    why every TOPIC_WAIT_LOG_SECONDS."""
    started = last_said = time.monotonic()
    while not consumer.partitions_for_topic(topic):
        if time.monotonic() - last_said >= TOPIC_WAIT_LOG_SECONDS:
            last_said = time.monotonic()
            log.warning("alerts topic %s not visible after %.0f s (missing, or the notifier's"
                        " principal may not describe it); waiting", topic,
                        last_said - started)  # fmt: skip
        time.sleep(TOPIC_WAIT_POLL_SECONDS)
    if time.monotonic() - started >= TOPIC_WAIT_POLL_SECONDS:
        log.info("alerts topic %s visible after %.1f s", topic, time.monotonic() - started)


class Notifier:
    def __init__(self, config: NotifierConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.tracker = OffsetTracker()
        self.db = Database(config.dsn, size=16)
        self.dispatcher = Dispatcher(config, self.db, self.metrics, holder_name(config)).start()
        self._unrecorded: tuple[list[ledger.Owed], dict] | None = None  # read, not yet recorded
        self.retention = RetentionClock(
            self.db, config.raw_retention_days, config.retention_interval_seconds
        )
        self.channels: list[Channel] | None = None  # None until read once: nothing is read before
        self._channels_read_at = 0.0
        self._lag_read_at = 0.0
        self.run_id = str(uuid.uuid4())
        self._figures_since = time.monotonic()
        self.last_loop_at = time.monotonic()
        self.running = True
        self.consumer = self._new_consumer()
        self._read_at = time.monotonic()  # the last record read, or the last time none waited

    def _new_consumer(self) -> KafkaConsumer:
        """A consumer in the notifier's group, subscribed once its topic is visible."""
        consumer = KafkaConsumer(
            **kafka_client_args(self.config, NOTIFIER),
            group_id=self.config.notifier_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a new group reads what the job published before
            client_id="heartbeat-notifier",
            # A killed notifier's partitions go to its restart (or a peer) within 10 s, not 45.
            session_timeout_ms=10_000,
            # A topic (or partitions) the broker did not yet report when the group was joined
            # is seen within 10 s, not kafka-python's 5 minutes: a group that joined with no
            # partition metadata would deliver nothing until then.
            metadata_max_age_ms=10_000,
        )
        _wait_until_visible(consumer, self.config.kafka_alerts_topic)
        listener = _Rebalances(consumer, self.tracker, self.metrics)
        consumer.subscribe([self.config.kafka_alerts_topic], listener=listener)
        return consumer

    def _rejoin(self, waiting: int) -> None:
        """Replace a consumer that reads nothing while events wait. Seen under heavy load with
        kafka-python 3.0.12: the broker dropped the member for missed heartbeats right after it
        joined, and the consumer neither rejoined nor fetched. What was read is recorded (or
        re-read by the new consumer), so nothing is lost and the log keeps nothing twice."""
        log.error("read nothing for %.0f s while %d event(s) wait on %s: rejoining the group"
                  " with a new consumer", time.monotonic() - self._read_at, waiting,
                  self.config.kafka_alerts_topic)  # fmt: skip
        self.metrics.rejoins += 1
        self.commit()
        self.consumer.close(autocommit=False)
        self.tracker.forget(self.tracker.partitions())  # the new consumer starts at the commit
        self.consumer = self._new_consumer()
        self._read_at = time.monotonic()

    def healthy(self) -> bool:
        """Reading comes round, and so does delivering."""
        recent = time.monotonic() - self.last_loop_at < 30
        return self.running and recent and self.dispatcher.feeding()

    def refresh_channels(self) -> None:
        if time.monotonic() - self._channels_read_at < CHANNELS_REFRESH_SECONDS:
            return
        try:
            with self.db.cursor() as cur:
                self.channels = ledger.load_channels(cur)
        except psycopg2.Error as error:  # keep the channels known; deliveries wait for the database
            log.warning("cannot re-read channels: %s", error)
            return
        self.metrics.channels = len(self.channels)
        self.dispatcher.channels = self.channels
        self._channels_read_at = time.monotonic()

    def owed_by(self, record) -> list[ledger.Owed]:
        """The deliveries one message owes: one per channel that wants its event (none for a
        message that is not an event)."""
        self.metrics.event_read()
        self._read_at = time.monotonic()
        try:
            event = parse_event(record.value)
        except MalformedEvent as error:
            log.warning("skipping %s@%s: %s", (record.topic, record.partition), record.offset,
                        error)  # fmt: skip
            self.metrics.malformed += 1
            return []
        published_at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
        return [
            ledger.Owed(channel, event, published_at)
            for channel in self.channels or ()
            if channel.wants(event)
        ]

    def record(self, owed: list[ledger.Owed], positions: dict) -> bool:
        """Record what was read as pending deliveries, then let the offsets move past it and
        wake the feeder. With the database away, keep it and pause reading until it can be
        recorded: a crash meanwhile re-reads it from the last commit."""
        try:
            with self.db.cursor() as cur:
                ledger.record_owed(cur, owed)
        except psycopg2.Error as error:
            if self._unrecorded is None:
                log.warning("cannot record %d deliveries read: %s; retrying in %.0f s",
                            len(owed), error, RECORD_RETRY_SECONDS)  # fmt: skip
            self._unrecorded = (owed, positions)
            return False
        self._unrecorded = None
        assigned = {tuple(tp) for tp in self.consumer.assignment()}
        self.tracker.recorded({p: at for p, at in positions.items() if p in assigned})
        if owed:
            self.dispatcher.wake()
        return True

    def commit(self) -> None:
        """Commit what is recorded. A commit refused while the group rebalances or its
        coordinator moves is left for the next round (or the revocation's commit): it costs
        only re-reads after a crash, which the log records once; the notifier goes on."""
        offsets = self.tracker.committable()
        if not offsets:
            return
        try:
            self.consumer.commit(commit_request(offsets))
        except DEFERRED_COMMIT_ERRORS as error:
            log.warning("commit deferred to the next round: %s: %s", type(error).__name__, error)
            return
        self.tracker.mark_committed(offsets)

    def refresh_lag(self) -> None:
        if time.monotonic() - self._lag_read_at < LAG_REFRESH_SECONDS:
            return
        self._lag_read_at = time.monotonic()
        self.refresh_backlog()
        assigned = self.consumer.assignment()
        if not assigned:
            return
        ends = self.consumer.end_offsets(list(assigned))
        committed = {tp: self.consumer.committed(tp) or 0 for tp in assigned}
        self.metrics.lag = {
            f"{tp.topic}/{tp.partition}": max(0, ends[tp] - committed[tp]) for tp in assigned
        }
        waiting = sum(self.metrics.lag.values())
        idle = time.monotonic() - self._read_at
        if stalled(waiting, bool(self.consumer.paused()), idle):
            self._rejoin(waiting)
        elif not waiting:
            self._read_at = time.monotonic()  # nothing to read is not a stall

    def refresh_backlog(self) -> None:
        """What each channel still owes, and which are failing, for /metrics and the figures;
        with the database away the last figures stay."""
        try:
            with self.db.cursor() as cur:
                self.metrics.backlog = ledger.backlog(cur)
                self.metrics.failing = failing_channels.failing(cur)
        except psycopg2.Error as error:
            log.warning("cannot read the channels' backlog: %s", error)

    def record_figures(self, force: bool = False) -> None:
        """Every INTERVAL_SECONDS, one pipeline_metrics row. With the database away, that
        interval's row is lost (logged): figures never hold up deliveries."""
        seconds = time.monotonic() - self._figures_since
        if seconds < pipeline_figures.INTERVAL_SECONDS and not force:
            return
        self._figures_since = time.monotonic()
        row = pipeline_figures.figures_row(
            self.metrics.take_interval(),
            group=self.config.notifier_group,
            run_id=self.run_id,
            ended_at=datetime.now(UTC),
            seconds=seconds,
            lag=dict(self.metrics.lag),
            in_flight=self.metrics.in_flight,
            backlog=dict(self.metrics.backlog),
        )
        try:
            with self.db.cursor() as cur:
                pipeline_figures.record(cur, row)
        except psycopg2.Error as error:
            log.warning("cannot record the notifier's figures: %s", error)
        try:
            with self.db.cursor() as cur:
                replica_lag.record(
                    cur, run_id=self.run_id, ended_at=row.batch_time, seconds=seconds
                )
        except psycopg2.Error as error:
            log.warning("cannot record the read replica's lag: %s", error)

    def read(self) -> None:
        """Poll once and record what the events read owe each channel. Reading waits only for
        the database, never for a delivery."""
        if self._unrecorded is not None:
            self.consumer.pause(*self.consumer.assignment())
            if not self.record(*self._unrecorded):
                # in the group meanwhile; paused, the poll returns nothing
                self.consumer.poll(timeout_ms=int(RECORD_RETRY_SECONDS * 1000))
                return
        if self.consumer.paused():
            self.consumer.resume(*self.consumer.paused())
        self.metrics.in_flight = self.dispatcher.in_flight()
        owed: list[ledger.Owed] = []
        positions: dict = {}
        for records in self.consumer.poll(timeout_ms=200, max_records=500).values():
            for record in records:
                owed += self.owed_by(record)
                positions[(record.topic, record.partition)] = record.offset + 1
        if positions:
            self.record(owed, positions)

    def step(self) -> None:
        """One round of the main loop."""
        self.last_loop_at = time.monotonic()
        self.refresh_channels()
        if self.channels is None:  # an event read now would match no channel: wait
            time.sleep(1)
            return
        self.read()
        self.commit()
        self.refresh_lag()
        self.record_figures()
        self.retention.tick()

    def run(self) -> None:
        server = api.serve(
            self.config.listen_address,
            api.make_handler(self.db, self.metrics, self.config.notifier_token, self.healthy),
        )
        log.info("notifier on %s (group %s), serving %s", self.config.kafka_alerts_topic,
                 self.config.notifier_group, self.config.notifier_listen)  # fmt: skip
        guard = Watchdog(lambda: self.last_loop_at, self.config.notifier_stuck_seconds).start()
        try:
            while self.running:
                self.step()
        finally:
            guard.stop()
            self.dispatcher.close()
            if self._unrecorded is None:
                self.commit()
            self.record_figures(force=True)
            self.consumer.close(autocommit=False)
            server.shutdown()
            self.db.close()

    def stop(self, *_: object) -> None:
        self.running = False
        self.dispatcher.stopping.set()


def run(config: NotifierConfig) -> None:
    notifier = Notifier(config)
    signal.signal(signal.SIGTERM, notifier.stop)
    signal.signal(signal.SIGINT, notifier.stop)
    notifier.run()
