"""Delivering what the log owes each channel, at least once, recorded. A feeder thread leases
each channel's due deliveries from the log (oldest first, an alert's events in order, at most
two per thread of HEARTBEAT_NOTIFY_CONCURRENCY) and hands them to that channel's own pool; a
delivery suppresses an acknowledged alert's `open`, else attempts with retries (tenacity:
exponential back-off with jitter, a 429's Retry-After honoured, no retry on a permanent refusal)
until delivered or dead. A slow or dead receiver holds up only its own channel: its backlog
waits in the log, and nothing else waits for it; its dead deliveries, or a backlog waiting too
long, open a `delivery_failing` notice for the other channels (failing_channels.py)."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg2
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_base, wait_exponential_jitter

from heartbeat_contract.alerts import OPEN

from . import failing_channels, ledger, messages
from .config import NotifierConfig
from .database import Database
from .events import Channel
from .metrics import Metrics
from .transports import Permanent, Retryable, post_webhook, send_email

log = logging.getLogger(__name__)
FEED_SECONDS = 1.0  # a pass at least this often, woken sooner by new rows or a finished one
# A delivery under way keeps its lease, renewed every third of this; a notifier killed mid-way
# leaves rows that a peer takes over once this has run out (its own restart, at once).
LEASE_SECONDS = 60.0
# Leased per channel thread: one being sent and one waiting in the pool's queue, so a thread
# that finishes starts its next delivery without waiting for the feeder's next pass.
QUEUED_PER_THREAD = 2
FEEDER_STUCK_SECONDS = 30.0  # no pass for this long: /health is red
CHANNELS_CHECK_SECONDS = 5.0  # late and recovered channels are looked for this often
# A delivery that fails for something other than the database (a message that cannot be built:
# a defect) is tried again after RETRY_SECONDS, and is dead at the UNEXPECTED_LIMIT-th failure:
# left pending it would hold its alert's later events, and a worker, for good.
RETRY_SECONDS = 5.0
UNEXPECTED_LIMIT = 3


class Stopping(Exception):
    """The notifier is shutting down: leave the delivery pending; it resumes after restart."""


class Acknowledged(Exception):
    """Someone acknowledged the alert while its `open` was still being retried: stop."""


class RetryAfterOrBackoff(wait_base):
    """A 429's Retry-After if it gave one (capped), else exponential back-off with jitter."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.maximum = maximum
        self.backoff = wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, Retryable) and error.retry_after is not None:
            return min(error.retry_after, self.maximum)
        return self.backoff(retry_state)


class Dispatcher:
    """The feeder and the per-channel pools. `wake` after recording new rows; a pass also runs
    every FEED_SECONDS for rows no wake announced (a peer's run-out lease, a database back from
    an outage, the rows a previous run left pending)."""

    def __init__(self, config: NotifierConfig, db: Database, metrics: Metrics, holder: str) -> None:
        self.config = config
        self.db = db
        self.metrics = metrics
        self.holder = holder
        self.stopping = threading.Event()
        self.channels: list[Channel] = []
        self._wake = threading.Event()
        self._pools: dict[int, ThreadPoolExecutor] = {}
        self._clients: dict[int, httpx.Client] = {}
        self._held: dict[int, set[str]] = {}  # channel -> deliveries under way here
        self._lock = threading.Lock()
        self._renewed_at = time.monotonic()
        self._checked_at = self._started_at = time.monotonic()
        self.fed_at = time.monotonic()  # the end of the feeder's last pass
        self._feeder = threading.Thread(target=self._feed_loop, name="feeder", daemon=True)

    def start(self) -> Dispatcher:
        self._feeder.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def in_flight(self) -> int:
        with self._lock:
            return sum(len(held) for held in self._held.values())

    def _feed_loop(self) -> None:
        """Pass after pass until stopped. A pass that fails is logged and the next one comes
        round: a feeder thread that died would leave the notifier reading and recording, and
        delivering nothing."""
        while not self.stopping.is_set():
            self._wake.wait(FEED_SECONDS)
            self._wake.clear()
            if self.stopping.is_set():
                return
            try:
                self.feed()
            except psycopg2.Error as error:  # the database away: the rows wait in the log
                log.warning("cannot read the deliveries due: %s; retrying in %.0f s", error,
                            FEED_SECONDS)  # fmt: skip
            except Exception:
                log.exception("a feeder pass failed; the next in %.0f s", FEED_SECONDS)
            self.fed_at = time.monotonic()

    def feeding(self) -> bool:
        """The feeder came round lately (for /health)."""
        return self._feeder.is_alive() and time.monotonic() - self.fed_at < FEEDER_STUCK_SECONDS

    def feed(self) -> None:
        """One pass: renew the leases under way when due, lease each channel's due rows up to
        its free threads and start them, and every CHANNELS_CHECK_SECONDS check the channels
        (check_channels)."""
        if time.monotonic() - self._renewed_at >= LEASE_SECONDS / 3:
            with self._lock:
                held = [i for ids in self._held.values() for i in ids]
            with self.db.cursor() as cur:
                ledger.renew_leases(cur, self.holder, held, LEASE_SECONDS)
            self._renewed_at = time.monotonic()
        for channel in list(self.channels):
            with self._lock:
                held = self._held.setdefault(channel.id, set())
                free = QUEUED_PER_THREAD * self.config.notify_concurrency - len(held)
                busy = list(held)
            if free <= 0:
                continue
            with self.db.cursor() as cur:
                due = ledger.lease_due(cur, channel.id, holder=self.holder, held=busy,
                                       limit=free, lease_seconds=LEASE_SECONDS)  # fmt: skip
            for delivery in due:
                self._start(channel, delivery)
        # Last, and timed from before it runs: a check that fails never holds up the leasing.
        if time.monotonic() - self._checked_at >= CHANNELS_CHECK_SECONDS:
            self._checked_at = time.monotonic()
            self.check_channels()

    def check_channels(self) -> None:
        """Channels whose backlog has waited HEARTBEAT_NOTIFY_LATE_SECONDS are failing (once
        this notifier has run that long itself: a backlog left by its own outage is not the
        receiver's); failing channels that delivered again and stayed quiet since are not. The
        notices opened and resolved are owed to the other channels (not before the channels are
        known: a notice owed to nobody would never be sent)."""
        channels = list(self.channels)
        if not channels:
            return
        by_id = {channel.id: channel for channel in channels}
        config = self.config
        watch_late = time.monotonic() - self._started_at >= config.notify_late_seconds
        with self.db.transaction() as cur:
            waiting = failing_channels.late(cur, config.notify_late_seconds) if watch_late else {}
            opened = [
                failing_channels.failed(cur, by_id[channel_id], what, dead=0)
                for channel_id, what in waiting.items()
                if channel_id in by_id
            ]
            recovered = failing_channels.resolve_recovered(
                cur, config.notify_recovered_after_seconds, config.notify_late_seconds
            )
            changed = [failure for failure in opened if failure is not None] + recovered
            failing_channels.announce(cur, changed, channels)
        for failure in changed:
            log.warning("channel %s: delivery_failing %s (%s)", failure.channel,
                        failure.event()["status"], failure.last_error)  # fmt: skip
        if changed:
            self.wake()

    def _start(self, channel: Channel, delivery: ledger.Delivery) -> None:
        with self._lock:
            if self.stopping.is_set():
                return
            self._held.setdefault(channel.id, set()).add(delivery.id)
            pool = self._pools.get(channel.id)
            if pool is None:
                pool = self._pools[channel.id] = ThreadPoolExecutor(
                    self.config.notify_concurrency, thread_name_prefix=f"channel-{channel.id}"
                )
            pool.submit(self._run, channel, delivery)

    def _run(self, channel: Channel, leased: ledger.Delivery) -> None:
        """Until recorded: a database outage pauses the delivery, it never loses it; anything
        else ends it dead at its UNEXPECTED_LIMIT-th time. Tried again, the delivery is re-read
        first: the attempts it made before the failure count against
        HEARTBEAT_NOTIFY_MAX_ATTEMPTS."""
        delivery: ledger.Delivery | None = leased
        unexpected = 0
        try:
            while not self.stopping.is_set():
                try:
                    if delivery is not leased:
                        with self.db.cursor() as cur:
                            delivery = ledger.current(cur, leased)
                        if delivery is None:
                            return  # finished meanwhile
                    self.deliver(channel, delivery)
                except Stopping:
                    return
                except psycopg2.Error as error:
                    log.warning("delivery %s to channel %s waits for the database (%s);"
                                " retrying in %.0f s", leased.id, channel.id, error,
                                RETRY_SECONDS)  # fmt: skip
                except Exception as error:
                    unexpected += 1
                    log.exception("delivery %s to channel %s failed (%d of %d)", leased.id,
                                  channel.id, unexpected, UNEXPECTED_LIMIT)  # fmt: skip
                    if unexpected >= UNEXPECTED_LIMIT:
                        why = f"cannot be delivered: {type(error).__name__}: {error}"
                        self._finish(channel, leased.id, "dead", error=why)
                        return
                else:
                    return
                delivery = None  # re-read before the next try
                self.stopping.wait(RETRY_SECONDS)
        finally:
            with self._lock:
                self._held.get(channel.id, set()).discard(leased.id)
            self.wake()  # a free thread, and perhaps the alert's next event due

    def _sleep(self, seconds: float) -> None:
        if self.stopping.wait(seconds):
            raise Stopping

    def _client(self, channel: Channel) -> httpx.Client:
        with self._lock:
            client = self._clients.get(channel.id)
            if client is None:
                client = self._clients[channel.id] = httpx.Client(
                    timeout=self.config.notify_timeout_seconds,
                    limits=httpx.Limits(max_connections=self.config.notify_concurrency),
                    follow_redirects=False,
                )
            return client

    def sender(self, channel: Channel, event: dict[str, object], delivery_id: str):
        """A callable that makes one attempt and returns its status code."""
        links = messages.links_for(
            event, dashboard_url=self.config.dashboard_url, ack_base_url=self.config.ack_base_url
        )
        if channel.transport == "email":
            config = self.config

            def send() -> int:
                message = messages.email_message(
                    event, sender=config.smtp_from, recipient=channel.target,
                    delivery_id=delivery_id, links=links,
                )  # fmt: skip
                return send_email(
                    message, host=config.smtp_host, port=config.smtp_port, tls=config.smtp_tls,
                    user=config.smtp_user, password=config.smtp_password,
                    timeout=config.notify_timeout_seconds,
                )  # fmt: skip

            return send
        client = self._client(channel)

        def post() -> int:
            sent_at = int(time.time())
            body = messages.webhook_body(
                event, fmt=channel.format, delivery_id=delivery_id, sent_at=sent_at, links=links
            )
            return post_webhook(client, channel.target, channel.secret or "", body, delivery_id,
                                sent_at)  # fmt: skip

        return post

    def deliver(self, channel: Channel, delivery: ledger.Delivery) -> str:
        """Take a leased delivery to its end; returns its outcome."""
        event = delivery.event
        if event["status"] == OPEN and delivery.alert_acknowledged:
            return self._finish(channel, delivery.id, "suppressed")
        remaining = self.config.notify_max_attempts - delivery.attempts
        if remaining <= 0:
            return self._finish(channel, delivery.id, "dead", error="attempts exhausted")
        send = self.sender(channel, event, delivery.id)
        attempt_number = [0]

        def attempt() -> int:
            if self.stopping.is_set():
                raise Stopping
            with self.db.cursor() as cur:
                retry = delivery.attempts > 0 or attempt_number[0] > 0
                if retry and ledger.should_suppress(cur, event):  # acknowledged meanwhile
                    raise Acknowledged
                ledger.start_attempt(cur, delivery.id)
            attempt_number[0] += 1
            self.metrics.attempt(channel.id)
            try:
                return send()
            except (Retryable, Permanent) as error:
                failure = error
            except Exception as error:  # e.g. a message that cannot be built: never send it
                log.exception("delivery %s cannot be attempted", delivery.id)
                failure = Permanent(f"unexpected {type(error).__name__}: {error}")
            with self.db.cursor() as cur:
                ledger.record_failure(cur, delivery.id, str(failure), failure.status)
            raise failure

        retrying = Retrying(
            stop=stop_after_attempt(remaining),
            wait=RetryAfterOrBackoff(
                self.config.notify_backoff_seconds, self.config.notify_backoff_max_seconds
            ),
            retry=retry_if_exception_type(Retryable),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            status = retrying(attempt)
        except Retryable as error:
            return self._finish(channel, delivery.id, "dead", error.status,
                                f"{error} (attempts exhausted)")  # fmt: skip
        except Permanent as error:
            return self._finish(channel, delivery.id, "dead", error.status, str(error))
        except Acknowledged:
            return self._finish(channel, delivery.id, "suppressed")
        return self._finish(channel, delivery.id, "delivered", status)

    def _finish(self, channel: Channel, delivery_id: str, outcome: str, status: int | None = None,
                error: str | None = None) -> str:  # fmt: skip
        if outcome == "dead":
            return self._finish_dead(channel, delivery_id, status, error)
        with self.db.cursor() as cur:
            latency = ledger.finish(cur, delivery_id, outcome, status, error)
        self.metrics.delivery(channel.id, outcome, latency if outcome == "delivered" else None)
        return outcome

    def _finish_dead(self, channel: Channel, delivery_id: str, status: int | None,
                     error: str | None) -> str:  # fmt: skip
        """Dead, and in the same transaction counted in the channel's failure notice, or the
        notice opened and owed to the other channels."""
        channels = list(self.channels)
        with self.db.transaction() as cur:
            ledger.finish(cur, delivery_id, "dead", status, error)
            ended_here = cur.rowcount == 1  # not ended meanwhile by another hand (notify remove)
            opened = failing_channels.failed(cur, channel, error, dead=1) if ended_here else None
            if opened is not None:
                failing_channels.announce(cur, [opened], channels)
        self.metrics.delivery(channel.id, "dead")
        log.warning("delivery %s to channel %s is dead: %s", delivery_id, channel.id, error)
        if opened is not None:
            log.error("channel %s is failing: a delivery_failing notice (alert %s) is owed to"
                      " the other channels", opened.channel, opened.alert_id)  # fmt: skip
            self.wake()
        return "dead"

    def close(self) -> None:
        """Stop feeding and delivering; what is left pending is released for a peer at once."""
        self.stopping.set()
        self._wake.set()
        if self._feeder.is_alive():
            self._feeder.join(30)
        for pool in list(self._pools.values()):
            pool.shutdown(wait=True, cancel_futures=True)
        for client in self._clients.values():
            client.close()
        try:
            with self.db.cursor() as cur:
                ledger.release_leases(cur, self.holder)
        except psycopg2.Error as error:  # the leases run out by themselves
            log.warning("cannot release the deliveries left pending: %s", error)
