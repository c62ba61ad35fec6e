"""The silence check's pure rules: up to when the topic has been read, and the outage decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from heartbeat_stream.transforms.silence import (
    OUTAGE_MIN_CUSTOMERS,
    Census,
    Decision,
    PartitionExtent,
    ReadPosition,
    decide,
    is_outage,
    read_up_to,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(minutes=7)


def test_a_topic_read_to_its_end_is_read_up_to_now():
    positions = {0: ReadPosition(10, EARLIER), 1: ReadPosition(4, EARLIER)}
    extents = {0: PartitionExtent(0, 10), 1: PartitionExtent(0, 4)}
    assert read_up_to(positions, extents, NOW) == NOW


def test_a_backlog_holds_the_moment_back_to_the_last_message_read():
    positions = {0: ReadPosition(10, EARLIER), 1: ReadPosition(4, NOW - timedelta(minutes=1))}
    extents = {0: PartitionExtent(0, 15), 1: PartitionExtent(0, 4)}  # partition 0: 5 waiting
    assert read_up_to(positions, extents, NOW) == EARLIER


def test_the_oldest_backlog_of_all_partitions_decides():
    older = EARLIER - timedelta(minutes=3)
    positions = {0: ReadPosition(10, EARLIER), 1: ReadPosition(4, older)}
    extents = {0: PartitionExtent(0, 11), 1: PartitionExtent(0, 5)}
    assert read_up_to(positions, extents, NOW) == older


def test_an_empty_partition_never_read_does_not_hold_it_back():
    positions = {0: ReadPosition(10, EARLIER)}
    extents = {0: PartitionExtent(0, 10), 1: PartitionExtent(0, 0), 2: PartitionExtent(7, 7)}
    assert read_up_to(positions, extents, NOW) == NOW


def test_a_partition_with_messages_never_read_means_unknown():
    positions = {0: ReadPosition(10, EARLIER)}
    extents = {0: PartitionExtent(0, 10), 1: PartitionExtent(0, 3)}
    assert read_up_to(positions, extents, NOW) is None


def test_no_partitions_known_means_unknown():
    assert read_up_to({0: ReadPosition(1, EARLIER)}, {}, NOW) is None


def test_positions_ahead_of_the_end_asked_earlier_count_as_read_to_the_end():
    # A batch committed after Kafka was asked: everything up to asked_at has been read.
    assert read_up_to({0: ReadPosition(12, EARLIER)}, {0: PartitionExtent(0, 10)}, NOW) == NOW


def test_one_silent_customer_among_many_is_reported_alone():
    assert decide(Census(silent=1, quiet=1, active=100), 0.5, False) == Decision(report_each=True)


def test_nobody_silent_does_nothing():
    assert decide(Census(silent=0, quiet=2, active=100), 0.5, False) == Decision()


def test_most_active_customers_quiet_is_one_outage_once_one_of_them_is_silent():
    wave = Census(silent=3, quiet=10, active=12)
    assert decide(wave, 0.5, False) == Decision(open_outage=True)
    # The first quiet ones, before anyone crossed the delay: nobody is reported alone.
    assert decide(Census(silent=0, quiet=10, active=12), 0.5, False) == Decision()


def test_a_wave_of_one_or_two_customers_is_no_outage():
    small = Census(silent=OUTAGE_MIN_CUSTOMERS - 1, quiet=OUTAGE_MIN_CUSTOMERS - 1, active=2)
    assert not is_outage(small, 0.5)
    assert decide(small, 0.5, False) == Decision(report_each=True)


@pytest.mark.parametrize(("quiet", "outage"), [(6, False), (7, True)])
def test_the_share_must_be_exceeded(quiet, outage):
    assert is_outage(Census(silent=quiet, quiet=quiet, active=12), 0.5) is outage


def test_an_open_outage_reports_nobody_alone_while_it_lasts():
    assert decide(Census(silent=11, quiet=11, active=12), 0.5, True) == Decision()


def test_an_outage_ends_when_readings_flow_again_and_reports_nobody_alone_then():
    assert decide(Census(silent=2, quiet=2, active=12), 0.5, True) == Decision(end_outage=True)
    assert decide(Census(silent=0, quiet=0, active=12), 0.5, True) == Decision(end_outage=True)


def test_stragglers_of_an_outage_are_reported_alone_only_a_silence_delay_after_it_ended():
    stragglers = Census(silent=2, quiet=2, active=12)
    assert decide(stragglers, 0.5, False, after_outage=True) == Decision()
    assert decide(stragglers, 0.5, False, after_outage=False) == Decision(report_each=True)
    # A new wave within that delay is an outage all the same.
    wave = Census(silent=8, quiet=8, active=12)
    assert decide(wave, 0.5, False, after_outage=True) == Decision(open_outage=True)


def test_the_moment_never_goes_back_before_an_earlier_rounds():
    # A partition idle since EARLIER receives a message the job has not read yet: on its own
    # it would be read only up to EARLIER, but an earlier round already judged up to NOW.
    waiting = {0: ReadPosition(10, EARLIER)}, {0: PartitionExtent(0, 11)}
    assert read_up_to(*waiting, NOW + timedelta(seconds=5)) == EARLIER
    assert read_up_to(*waiting, NOW + timedelta(seconds=5), judged_before=NOW) == NOW
    # Later moments move on past it.
    read = {0: ReadPosition(11, NOW)}, {0: PartitionExtent(0, 11)}
    later = NOW + timedelta(seconds=10)
    assert read_up_to(*read, later, judged_before=NOW) == later
