"""The one builder of an episode's event from its row (sinks/alert_outbox.episode_event), used by
the sink, the silence check and the baseline pass for their `resolved` events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from heartbeat_contract.alerts import (
    DEVICE_SILENT,
    ELEVATED_RESTING,
    OPEN,
    RESOLVED,
    alert_event,
)
from heartbeat_stream.sinks.alert_outbox import EpisodeFigures, episode_event

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def test_a_short_row_leaves_the_bpm_figures_empty():
    row = (T0, T0 + timedelta(minutes=7), T0, 0, 2)  # the silence check's episode columns
    assert episode_event("C0001", DEVICE_SILENT, RESOLVED, row) == alert_event(
        customer_id="C0001",
        kind=DEVICE_SILENT,
        status=RESOLVED,
        started_at=T0,
        ended_at=T0 + timedelta(minutes=7),
        last_reading_at=T0,
        readings=0,
        revision=2,
    )


def test_a_full_row_carries_every_figure_in_its_place():
    row = EpisodeFigures(
        started_at=T0,
        ended_at=None,
        last_reading_at=T0 + timedelta(days=2),
        readings=2,
        revision=1,
        extreme_bpm=71,
        threshold_bpm=67.5,
        baseline_bpm=63.5,
    )
    event = episode_event("C0002", ELEVATED_RESTING, OPEN, tuple(row))
    assert (event["readings"], event["revision"], event["extreme_bpm"]) == (2, 1, 71)
    assert (event["threshold_bpm"], event["baseline_bpm"]) == (67.5, 63.5)
    assert (event["started_at"], event["ended_at"]) == (T0.isoformat(), None)
    assert event["last_reading_at"] == (T0 + timedelta(days=2)).isoformat()
    # The same episode resolved has the same alert_id and its own event_id.
    resolved = episode_event("C0002", ELEVATED_RESTING, RESOLVED, tuple(row))
    assert resolved["alert_id"] == event["alert_id"]
    assert resolved["event_id"] != event["event_id"]
