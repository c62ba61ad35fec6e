"""Figures the reliability tests measure (recovery times, ledger results), printed at the end."""

from __future__ import annotations

import json
import time

from heartbeat_ops.config import var_dir

FIGURES: list[dict] = []


def record(test: str, **values: object) -> None:
    """Keep one line for the terminal summary and append it to var/log/reliability-figures.jsonl."""
    entry = {"test": test, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **values}
    FIGURES.append(entry)
    path = var_dir() / "log" / "reliability-figures.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(entry, default=str) + "\n")
