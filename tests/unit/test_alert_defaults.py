"""The dashboards' global alert defaults are the settings' values, whatever the environment says,
and the upsert names every column of alert_defaults (sql/011) once."""

from __future__ import annotations

import re

import pytest

from heartbeat_contract.settings import ROOT, Settings
from heartbeat_ops import alert_defaults

pytestmark = pytest.mark.unit


def test_parameters_follow_the_environment(monkeypatch):
    monkeypatch.setenv("HEARTBEAT_ALERT_HIGH_BPM", "135")
    monkeypatch.setenv("HEARTBEAT_BASELINE_MIN_DAYS", "9")
    values = alert_defaults.parameters(Settings())
    assert values["high"] == 135
    assert values["min_days"] == 9
    assert values["low"] == Settings.model_fields["alert_low_bpm"].default


def test_upsert_writes_every_column_of_the_table():
    migration = (ROOT / "sql" / "011_alert_dashboards.sql").read_text()
    table = re.search(r"CREATE TABLE alert_defaults \((.*?)\n\);", migration, re.S).group(1)
    columns = {line.split()[0] for line in table.strip().splitlines()} - {"singleton"}
    inserted = re.search(r"INSERT INTO alert_defaults \((.*?)\)", alert_defaults.UPSERT, re.S)
    names = [name.strip() for name in inserted.group(1).split(",")]
    assert set(names) - {"singleton"} == columns
    assert len(names) == len(set(names))
    placeholders = set(re.findall(r"%\((\w+)\)s", alert_defaults.UPSERT))
    assert placeholders == set(alert_defaults.parameters(Settings()))
