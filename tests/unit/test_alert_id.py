"""Alert events carry a stable id, so consumers can deduplicate an at-least-once re-send."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from heartbeat_contract.alerts import alert_message

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def test_same_episode_same_id_whatever_the_time_zone_or_counts():
    _, first = alert_message("C0001", "tachycardia", T0, 150, 60)
    _, again = alert_message("C0001", "tachycardia", T0.astimezone(timezone(timedelta(hours=2))),
                             165, 90)  # fmt: skip
    assert json.loads(first)["alert_id"] == json.loads(again)["alert_id"]


def test_different_episodes_different_ids():
    ids = {
        json.loads(alert_message(c, k, t, 150, 60)[1])["alert_id"]
        for c in ("C0001", "C0002")
        for k in ("tachycardia", "bradycardia")
        for t in (T0, T0 + timedelta(seconds=1))
    }
    assert len(ids) == 8
