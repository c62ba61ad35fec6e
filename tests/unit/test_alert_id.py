"""Alert events carry a stable id, so consumers can deduplicate an at-least-once re-send."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from heartbeat_contract.alerts import alert_event, alert_message

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


def test_lifecycle_events_of_one_episode_share_its_alert_id_not_their_event_id():
    common = {"customer_id": "C0001", "kind": "critical_low", "started_at": T0}
    opened = alert_event(**common, status="open", last_reading_at=T0)
    resolved = alert_event(**common, status="resolved", last_reading_at=T0, ended_at=T0)
    again = alert_event(**common, status="resolved", last_reading_at=T0, ended_at=T0, revision=1)
    assert opened["alert_id"] == resolved["alert_id"] == again["alert_id"]
    assert len({opened["event_id"], resolved["event_id"], again["event_id"]}) == 3
    assert (opened["severity"], opened["status"], resolved["status"]) == (
        "critical",
        "open",
        "resolved",
    )
