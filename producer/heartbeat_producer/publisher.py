"""Publishing Messages to Kafka with kafka-python: batched, acknowledged by all replicas,
idempotent, and with every delivery outcome counted in a Ledger (never silently dropped).

Outcomes are counted on the caller's thread, not in delivery callbacks: each send's future is
queued and `settle()` (called between batches and by `flush()`) counts the finished ones in one
pass. Two callbacks per message, run on kafka-python's sender thread under the GIL, cost more
than the send itself once the client is tuned; the counts are the same, only read later.

kafka-python 3.x implements the idempotent producer (KIP-98/KIP-679): with it, the retries
that follow a lost acknowledgement cannot write a reading twice. We ask for it explicitly, so a
conflicting setting raises instead of silently turning it off. `retries` is left at its default
(unbounded), bounded in time by delivery_timeout_ms, as kafka-python recommends for idempotence.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from kafka import KafkaProducer
from kafka.codec import has_gzip, has_lz4, has_snappy, has_zstd
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.partitioner import DefaultPartitioner

from heartbeat_contract.kafka_security import RECONNECT_BACKOFF_MAX_MS

from .config import PublisherSettings
from .ledger import Ledger
from .simulator import Message

log = logging.getLogger(__name__)

_CODECS = {"gzip": has_gzip, "snappy": has_snappy, "lz4": has_lz4, "zstd": has_zstd}


def available_compression() -> list[str]:
    """Codecs usable without extra packages on this install ('none' always is)."""
    return ["none", *(name for name, present in _CODECS.items() if present())]


class CachingPartitioner(DefaultPartitioner):
    """The default murmur2 key partitioner, memoised per (key, partition count).

    A few hundred customer keys repeat forever; hashing each in pure Python costs ~10% of the
    per-message budget. The partition count is part of the cache key, so a topic that grows
    is hashed afresh, exactly as the default partitioner would.
    """

    _LIMIT = 100_000

    def __init__(self) -> None:
        self._cache: dict[tuple[bytes, int], int] = {}

    def partition(
        self,
        topic: str,
        key: Any,
        serialized_key: bytes | None,
        value: Any,
        serialized_value: bytes | None,
        cluster: Any,
    ) -> int:
        if serialized_key is None:
            return super().partition(topic, key, None, value, serialized_value, cluster)
        partitions = cluster.partitions_for_topic(topic)
        slot = (serialized_key, len(partitions) if partitions else 0)
        chosen = self._cache.get(slot)
        if chosen is None:
            if len(self._cache) >= self._LIMIT:
                self._cache.clear()
            chosen = super().partition(topic, key, serialized_key, value, serialized_value, cluster)
            self._cache[slot] = chosen
        return chosen


class Publisher:
    """Sends Messages to one topic and records each acknowledgement or failure in a Ledger."""

    def __init__(
        self, settings: PublisherSettings, ledger: Ledger | None = None, **overrides: Any
    ) -> None:
        self.settings = settings
        self.ledger = ledger if ledger is not None else Ledger()
        compression = settings.compression if settings.compression != "none" else None
        config: dict[str, Any] = {
            "bootstrap_servers": settings.bootstrap_servers.split(","),
            "client_id": settings.client_id,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": settings.linger_ms,
            "batch_size": settings.batch_size,
            "compression_type": compression,
            "delivery_timeout_ms": settings.delivery_timeout_ms,
            "max_block_ms": settings.max_block_ms,
            "partitioner": CachingPartitioner(),
            "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
            **settings.security,
        }
        config.update(overrides)
        self._producer = KafkaProducer(**config)
        self._topic = settings.topic
        self._pending: deque[tuple[Any, Message]] = deque()  # (future, message), oldest first
        try:  # fail fast and clearly: the broker does not auto-create topics
            self._producer.partitions_for(self._topic)
        except KafkaTimeoutError as error:
            self._producer.close(timeout=0)
            raise KafkaTimeoutError(
                f"topic {self._topic!r} not found within {settings.max_block_ms} ms"
                " (topics are not auto-created; `make up` creates the readings topic)"
            ) from error

    @property
    def idempotent(self) -> bool:
        """Whether the underlying producer really runs idempotently (it raises otherwise)."""
        return bool(self._producer.config.get("enable_idempotence"))

    def publish(self, message: Message) -> None:
        """Hand one message to the producer's buffer; its outcome is counted by settle()."""
        self.publish_all((message,))

    def publish_all(
        self, messages: Iterable[Message], stopping: Callable[[], bool] | None = None
    ) -> int:
        """Hand messages to the producer's buffer until `stopping()` says so; returns how many.

        A send may block up to max_block_ms (broker away, buffer full), so `stopping` is asked
        after every message: a stop request is honoured after at most one blocked send.
        """
        send, topic, pending = self._producer.send, self._topic, self._pending
        handed = 0
        try:
            for message in messages:
                handed += 1
                try:
                    pending.append((send(topic, value=message.value, key=message.key), message))
                except KafkaError as error:  # buffer full past max_block_ms, or no metadata
                    self._on_failure(message, error)
                if stopping is not None and stopping():
                    break
        finally:
            self.ledger.generated(handed)
        self.settle()
        return handed

    def settle(self) -> int:
        """Count every finished send, oldest first, up to the first one still in flight."""
        pending = self._pending
        acknowledged: list[Message] = []
        while pending:
            future, message = pending[0]
            if not future.is_done:
                break
            pending.popleft()
            if future.exception is None:
                acknowledged.append(message)
            else:
                self._on_failure(message, future.exception)
        if acknowledged:
            self.ledger.acknowledged_all(acknowledged)
        return len(acknowledged)

    def _on_failure(self, message: Message, error: BaseException) -> None:
        if self.ledger.failed(message, error):
            log.error("delivery failed (%s): %s", type(error).__name__, error)

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything buffered and wait for the outcomes; False if time ran out."""
        try:
            self._producer.flush(timeout=timeout)
        except KafkaTimeoutError:
            self.settle()
            return False
        self.settle()
        return not self._pending

    def close(self, timeout: float = 5.0) -> None:
        self._producer.close(timeout=timeout)
        self.settle()  # close() fails what it could not deliver: count those too

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def send_all(
    messages: Iterable[Message],
    *,
    bootstrap_servers: str,
    topic: str,
    timeout: float = 60.0,
) -> Ledger:
    """Publish a finite batch of messages (e.g. known_mix()) and wait until all are settled.

    Raises if any message failed or is still unconfirmed after `timeout`: a test building
    expectations from these messages must not run on a partial delivery.
    """
    settings = PublisherSettings(bootstrap_servers=bootstrap_servers, topic=topic)
    with Publisher(settings) as publisher:
        publisher.publish_all(messages)
        publisher.flush(timeout=timeout)
        snapshot = publisher.ledger.snapshot()
    if snapshot.failed or snapshot.unconfirmed:
        raise RuntimeError(
            f"delivery incomplete: {snapshot.sent} sent, {snapshot.failed} failed, "
            f"{snapshot.unconfirmed} unconfirmed (errors: {snapshot.errors})"
        )
    return publisher.ledger
