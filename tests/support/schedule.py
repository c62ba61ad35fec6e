"""How long each unit of a parallel run took last time, so the longest start first.

A parallel run ends when its last worker does. Handed out in file order, a long unit that comes
late (a file of job restarts, the Superset group) runs on one worker while the others sit idle;
handed out longest first, the tail is made of short units and the workers finish together.

The figures are each unit's summed test durations (setup, call and teardown) from the last
whole parallel run of this checkout that passed (var/test-durations.json, written at its end; a
failing run's times, cut short or stretched by timeouts, are not kept), else the ones kept in
git (tests/durations.json, a quiet machine's run copied there, for a fresh clone).
They only order the work: a wrong or missing figure makes a run slower, never different.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from heartbeat_ops.config import ROOT, var_dir

KEPT = ROOT / "tests" / "durations.json"
UNIT_TESTS = "tests/unit/"
# A unit no run has timed yet (a new file): about a median integration file.
UNKNOWN_S = 30.0


def recorded() -> Path:
    return var_dir() / "test-durations.json"


def expected_seconds() -> dict[str, float]:
    """Unit -> seconds: this checkout's last parallel run, else the kept figures, else none."""
    for path in (recorded(), KEPT):
        if path.exists():
            return json.loads(path.read_text())
    return {}


def record(took: Counter[str]) -> None:
    """Keep this run's figures; a unit it did not run keeps its previous one."""
    merged = {**expected_seconds(), **{unit: round(s, 1) for unit, s in took.items()}}
    recorded().parent.mkdir(parents=True, exist_ok=True)
    recorded().write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")


def rank(unit: str, expected: dict[str, float]) -> tuple[int, float]:
    """Sort key of a unit of work: the unit tests first (their failures show at once), then the
    longest expected first."""
    if unit.startswith(UNIT_TESTS):
        return (0, 0.0)
    return (1, -expected.get(unit, UNKNOWN_S))
