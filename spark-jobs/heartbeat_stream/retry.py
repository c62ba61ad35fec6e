"""Retry with exponential back-off, for outages short enough to ride out inside one batch."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def with_retry(
    action: Callable[[], T],
    *,
    give_up_after: float,
    first_delay: float = 1.0,
    max_delay: float = 15.0,
    what: str = "operation",
) -> T:
    """Run `action` until it succeeds or `give_up_after` seconds pass; then re-raise.

    Only safe for idempotent actions: here, writing a micro-batch that may be written twice.
    """
    deadline = time.monotonic() + give_up_after
    delay = first_delay
    attempt = 1
    while True:
        try:
            return action()
        except Exception as error:  # JDBC errors arrive as Py4J errors: no narrower common type
            if time.monotonic() + delay > deadline:
                log.error("%s failed after %d attempts; giving up: %s", what, attempt, error)
                raise
            log.warning(
                "%s failed (attempt %d), retrying in %.0fs: %s",
                what,
                attempt,
                delay,
                str(error).splitlines()[0][:300],
            )
            time.sleep(delay)
            delay = min(delay * 2, max_delay)
            attempt += 1
