"""Restart the notifier in place when its main loop stops coming round.

kafka-python 3.0.12's `poll()` can block for good after a group join (seen under load: the
waiter it hands its IO thread never completes; the IO thread keeps heartbeating, so the group
keeps the member and its partitions). Alert events would then wait with nobody reading them.
A database statement stuck behind a lock would do the same. Re-executing the program is what a
supervisor's restart does, without needing one (natively, in compose, under test): the new
process re-reads from the last commit, and the delivery ledger skips what it recorded as
delivered, so nothing is lost and nothing recorded is sent twice."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable

log = logging.getLogger(__name__)


def stuck_for(last_beat: float, now: float, limit: float) -> float | None:
    """Seconds since the loop's last beat, if that is `limit` or more; else None."""
    seconds = now - last_beat
    return seconds if seconds >= limit else None


def main_thread_stack() -> str:
    frame = sys._current_frames().get(threading.main_thread().ident)
    return "".join(traceback.format_stack(frame)) if frame else "(no main thread)"


def restart_in_place(seconds: float) -> None:
    """Log where the main thread is stuck, then replace the process with a fresh run of the
    same command (same pid, same environment)."""
    log.error("main loop stuck for %.0f s, restarting the notifier in place; main thread:\n%s",
              seconds, main_thread_stack())  # fmt: skip
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.execv(sys.executable, sys.orig_argv)


class Watchdog:
    """A daemon thread that calls `on_stuck` once the loop has not beaten for `limit` seconds;
    `stop()` disarms it (a shutdown may take longer than a round)."""

    def __init__(
        self,
        last_beat: Callable[[], float],
        limit: float,
        on_stuck: Callable[[float], None] = restart_in_place,
    ) -> None:
        self.last_beat = last_beat
        self.limit = limit
        self.on_stuck = on_stuck
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notifier-watchdog", daemon=True)

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(min(5.0, self.limit / 4)):
            seconds = stuck_for(self.last_beat(), time.monotonic(), self.limit)
            if seconds is not None:
                self.on_stuck(seconds)
                return
