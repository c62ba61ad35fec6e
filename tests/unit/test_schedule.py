"""A parallel run hands out the unit tests first, then the units that took longest last time:
figures from this checkout's last whole run, else the ones kept in git."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.support import schedule

pytestmark = pytest.mark.unit


@pytest.fixture
def kept(tmp_path, monkeypatch):
    """An empty var folder and a kept figures file of the test's own."""
    monkeypatch.setenv("HEARTBEAT_VAR_DIR", str(tmp_path / "var"))
    path = tmp_path / "durations.json"
    monkeypatch.setattr(schedule, "KEPT", path)
    return path


def test_unit_tests_first_then_the_longest_then_unknown_ones_as_a_median_file():
    expected = {"tests/integration/test_a.py": 200.0, "tests/superset/": 500.0}
    units = [
        "tests/integration/test_new.py",
        "tests/integration/test_a.py",
        "tests/unit/test_x.py",
        "tests/superset/",
        "tests/integration/test_tiny.py",
    ]
    expected["tests/integration/test_tiny.py"] = 2.0
    assert sorted(units, key=lambda unit: schedule.rank(unit, expected)) == [
        "tests/unit/test_x.py",
        "tests/superset/",
        "tests/integration/test_a.py",
        "tests/integration/test_new.py",
        "tests/integration/test_tiny.py",
    ]


def test_a_fresh_clone_reads_the_kept_figures_and_a_run_then_its_own(kept):
    assert schedule.expected_seconds() == {}
    kept.write_text(json.dumps({"tests/superset/": 500.0, "tests/integration/test_a.py": 9.0}))
    assert schedule.expected_seconds()["tests/superset/"] == 500.0

    schedule.record(Counter({"tests/integration/test_a.py": 120.04}))
    assert schedule.expected_seconds() == {
        "tests/superset/": 500.0,  # not run this time: its previous figure stays
        "tests/integration/test_a.py": 120.0,
    }
    assert json.loads(kept.read_text())["tests/integration/test_a.py"] == 9.0  # git's untouched
