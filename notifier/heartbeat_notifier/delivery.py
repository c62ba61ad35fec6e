"""Delivering one event to one channel, at least once, recorded: claim the (channel, event) row,
skip it if already finished, suppress an acknowledged alert's `open`, else attempt with retries
(tenacity: exponential back-off with jitter, a 429's Retry-After honoured, no retry on a permanent
refusal) until delivered or dead. Each channel has its own bounded pool of threads, so a slow or
dead receiver only ever holds up its own deliveries."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_base, wait_exponential_jitter

from heartbeat_contract.alerts import OPEN

from . import ledger, messages
from .config import NotifierConfig
from .database import Database
from .events import Channel
from .metrics import Metrics
from .transports import Permanent, Retryable, post_webhook, send_email

log = logging.getLogger(__name__)


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
    """Per-channel thread pools; `submit` returns at once, `on_finished` runs once the delivery
    is recorded as delivered, dead or suppressed (never before). Events of one alert reach a
    channel in the order read (open before resolved): each waits for the alert's previous one
    on that channel, which the pool's FIFO queue has already started, so waiting cannot
    deadlock."""

    def __init__(self, config: NotifierConfig, db: Database, metrics: Metrics) -> None:
        self.config = config
        self.db = db
        self.metrics = metrics
        self.stopping = threading.Event()
        self._pools: dict[int, ThreadPoolExecutor] = {}
        self._clients: dict[int, httpx.Client] = {}
        self._latest: dict[tuple[int, str], Future] = {}  # (channel, alert) -> its last job
        self._lock = threading.Lock()

    def submit(
        self,
        channel: Channel,
        event: dict[str, object],
        published_at: datetime | None,
        on_finished: Callable[[], None],
    ) -> None:
        with self._lock:
            pool = self._pools.get(channel.id)
            if pool is None:
                pool = self._pools[channel.id] = ThreadPoolExecutor(
                    self.config.notify_concurrency, thread_name_prefix=f"channel-{channel.id}"
                )
            key = (channel.id, str(event["alert_id"]))
            previous = self._latest.get(key)
            future = pool.submit(self._run, channel, event, published_at, on_finished, previous)
            self._latest[key] = future
        future.add_done_callback(lambda done: self._forget(key, done))

    def _forget(self, key: tuple[int, str], done: Future) -> None:
        with self._lock:
            if self._latest.get(key) is done:
                del self._latest[key]

    def _run(self, channel, event, published_at, on_finished, previous: Future | None) -> None:
        """Until recorded: a database outage pauses the delivery, it never loses it."""
        if previous is not None:
            wait([previous])
        while not self.stopping.is_set():
            try:
                self.deliver(channel, event, published_at)
            except Stopping:
                return
            except Exception:
                log.exception("delivery of %s to channel %s failed; retrying in 5 s",
                              event.get("event_id"), channel.id)  # fmt: skip
                self.stopping.wait(5)
                continue
            on_finished()
            return

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

    def deliver(self, channel: Channel, event: dict[str, object], published_at) -> str:
        """Take the (channel, event) delivery to its end; returns its outcome."""
        with self.db.cursor() as cur:
            delivery = ledger.claim(cur, channel, event, published_at)
            if delivery.outcome != "pending":
                return delivery.outcome  # a redelivered event already finished: never twice
            if event["status"] == OPEN and delivery.alert_acknowledged:
                ledger.finish(cur, delivery.id, "suppressed")
                self.metrics.delivery(channel.id, "suppressed")
                return "suppressed"
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
        with self.db.cursor() as cur:
            latency = ledger.finish(cur, delivery_id, outcome, status, error)
        self.metrics.delivery(channel.id, outcome, latency if outcome == "delivered" else None)
        if outcome == "dead":
            log.warning("delivery %s to channel %s is dead: %s", delivery_id, channel.id, error)
        return outcome

    def close(self) -> None:
        self.stopping.set()
        for pool in list(self._pools.values()):
            pool.shutdown(wait=True, cancel_futures=True)
        for client in self._clients.values():
            client.close()
