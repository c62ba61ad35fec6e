"""OutboxPublisher.behind: whether events may wait in the outbox, so that the silence check's
timer publishes them even when no reading arrives (the sink skips publishing while Kafka
refuses). Only the bookkeeping is tested here; the publishing itself runs against Kafka and
PostgreSQL in tests/integration/test_alert_outbox.py and test_alert_rules.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka.errors import KafkaTimeoutError

from heartbeat_stream.sinks.alert_outbox import OutboxPublisher

pytestmark = pytest.mark.unit


class _Pages:
    """Stands in for the outbox's database: each run() is one page of publish_pending, which
    returns how many events it sent, raises, or first does something else meanwhile."""

    def __init__(self, *pages: int | Exception | Callable[[], int]) -> None:
        self.pages = list(pages)

    def run(self, work: object) -> int:
        page = self.pages.pop(0)
        if isinstance(page, Exception):
            raise page
        return page() if callable(page) else page


def publisher(*pages: int | Exception | Callable[[], int]) -> OutboxPublisher:
    made = OutboxPublisher({}, {}, "alerts", "sink", producer=object())
    made._database = _Pages(*pages)
    return made


def test_a_failed_publish_leaves_it_behind_until_one_succeeds():
    outbox = publisher(KafkaTimeoutError("no metadata"), 3)
    assert not outbox.behind
    with pytest.raises(KafkaTimeoutError):
        outbox.publish()
    assert outbox.behind
    assert outbox.publish() == 3
    assert not outbox.behind


def test_events_left_before_a_publish_are_covered_by_it():
    outbox = publisher(2)
    outbox.publish_later()
    assert outbox.behind
    outbox.publish()
    assert not outbox.behind


def test_events_left_while_a_publish_runs_keep_it_behind():
    """The sink commits a batch and leaves its events after the running publish read its page:
    that publish's success must not clear them (seen: they waited for the next batch)."""
    outbox = publisher(lambda: (outbox.publish_later(), 4)[1], 0)
    assert outbox.publish() == 4
    assert outbox.behind
    outbox.publish()
    assert not outbox.behind


def test_a_full_page_is_followed_by_the_next():
    outbox = publisher(1000, 1000, 7)
    assert outbox.publish() == 2007
    assert not outbox.behind
