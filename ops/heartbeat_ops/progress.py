"""A one-line progress bar on stderr: long loads say how far they are without a dependency."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Redraws `label [#####.....] 45% 4,500,000/10,000,000 150,000/s eta 36s` at most
    every `every` seconds; a plain line per update when the stream is not a terminal."""

    def __init__(
        self, label: str, total: int, stream: TextIO | None = None, every: float | None = None
    ) -> None:
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self._tty = self.stream.isatty()
        self.every = every if every is not None else (0.5 if self._tty else 10.0)
        self.started = time.monotonic()
        self._drawn = self.started
        self._drawn_done = -1

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._drawn >= self.every:
            self._draw(now)

    def close(self) -> float:
        """Draw the final state and end the line; returns the elapsed seconds."""
        now = time.monotonic()
        if self._tty or self._drawn_done != self.done:
            self._draw(now)
        if self._tty:
            self.stream.write("\n")
        self.stream.flush()
        return now - self.started

    def _draw(self, now: float) -> None:
        self._drawn, self._drawn_done = now, self.done
        elapsed = max(now - self.started, 1e-9)
        share = min(self.done / self.total, 1.0)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate else 0.0
        bar = "#" * int(share * 30)
        line = (
            f"{self.label} [{bar:<30}] {share:4.0%} {self.done:,}/{self.total:,} "
            f"{rate:,.0f}/s eta {eta:.0f}s"
        )
        self.stream.write(f"\r{line}" if self._tty else f"{line}\n")
        self.stream.flush()
