"""`heartbeat-ops alerts set`: bad input is refused with a clear message before any SQL."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from heartbeat_ops.alerts_cli import SettingsError, bpm, check_bounds, moment, on_off, seconds

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text", ["19", "251", "abc", "72.5"])
def test_bpm_outside_the_plausible_band_or_not_whole_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        bpm(text)


def test_bpm_bounds_are_inclusive():
    assert (bpm("20"), bpm("250")) == (20, 250)


@pytest.mark.parametrize("text", ["0", "-5", "86401", "soon"])
def test_sustain_must_be_positive_and_at_most_a_day(text):
    with pytest.raises(argparse.ArgumentTypeError):
        seconds(text)


def test_mute_until_needs_an_offset():
    assert moment("2030-01-01T08:00:00Z") == datetime(2030, 1, 1, 8, tzinfo=UTC)
    assert moment("2030-01-01T09:00:00+01:00").utcoffset() == timedelta(hours=1)
    with pytest.raises(argparse.ArgumentTypeError, match="no offset"):
        moment("2030-01-01T08:00:00")
    with pytest.raises(argparse.ArgumentTypeError, match="not an ISO-8601 time"):
        moment("tomorrow")
    assert moment("2030-01-01 08:00+00:00").tzinfo == UTC


def test_on_off():
    assert (on_off("on"), on_off("off")) == (True, False)
    with pytest.raises(argparse.ArgumentTypeError):
        on_off("yes")


def test_low_must_stay_below_high():
    check_bounds(45, 100)
    with pytest.raises(SettingsError, match="must be below"):
        check_bounds(100, 100)


def test_alerts_ack_is_the_notifiers_acknowledgement():
    """The command every notification names (`heartbeat-ops alerts ack`) records the same
    acknowledgement as `notify ack`."""
    from heartbeat_ops import alerts_cli, notify_cli

    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    alerts_cli.add_commands(commands)
    args = parser.parse_args(["alerts", "ack", "9f3a", "--by", "nurse Ana", "--note", "called"])
    assert (args.func, args.alert_id, args.by, args.note) == (
        notify_cli.cmd_ack,
        "9f3a",
        "nurse Ana",
        "called",
    )
