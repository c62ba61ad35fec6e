"""The command line: defaults that suit supervisord, env and flags, clear errors for bad input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from heartbeat_producer import cli
from heartbeat_producer.config import DEFAULT_BOOTSTRAP_SERVERS, DEFAULT_TOPIC

pytestmark = pytest.mark.unit


class Captured:
    def __init__(self) -> None:
        self.calls: list[tuple] = []


@pytest.fixture
def captured(monkeypatch):
    """main() with produce() replaced: we only check what it would run."""
    result = Captured()

    class Report:
        ok = True

    def fake_run(simulation, publishing, settings, *, start=None):
        result.calls.append((simulation, publishing, settings, start))
        return Report()

    monkeypatch.setattr(cli, "produce", fake_run)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("KAFKA_TOPIC", raising=False)
    return result


def test_no_arguments_means_a_live_feed_of_100_customers_at_one_reading_per_second(captured):
    assert cli.main([]) == 0
    ((simulation, publishing, settings, start),) = captured.calls
    assert simulation.customers == 100 and settings.rate == 100.0
    assert settings.duration is None and settings.count is None
    assert (publishing.bootstrap_servers, publishing.topic) == (DEFAULT_BOOTSTRAP_SERVERS,
                                                                DEFAULT_TOPIC)  # fmt: skip
    assert publishing.compression == "zstd" and start is None
    assert settings.workers == 1  # the live feed: one process
    assert 0 < simulation.invalid_rate < 0.05 and simulation.malformed_rate == 0.0


def test_environment_sets_the_connection_and_flags_override_it(captured, monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:19092")
    monkeypatch.setenv("KAFKA_TOPIC", "from-env")
    cli.main([])
    cli.main(["--bootstrap-servers", "other:9092", "--topic", "from-flag"])
    first, second = (call[1] for call in captured.calls)
    assert (first.bootstrap_servers, first.topic) == ("broker:19092", "from-env")
    assert (second.bootstrap_servers, second.topic) == ("other:9092", "from-flag")


def test_every_option_reaches_the_run(captured, tmp_path):
    cli.main(["--customers", "7", "--rate", "350", "--count", "99", "--seed", "5",
              "--start", "2026-11-29T20:00:00Z", "--invalid-rate", "0.1",
              "--abnormal-rate", "0.2", "--malformed-rate", "0.3", "--ledger",
              str(tmp_path / "l.json"), "--linger-ms", "0", "--batch-size", "1024",
              "--compression", "none", "--progress-interval", "1.5"])  # fmt: skip
    ((simulation, publishing, settings, start),) = captured.calls
    assert (simulation.customers, simulation.seed) == (7, 5)
    assert (simulation.invalid_rate, simulation.abnormal_rate, simulation.malformed_rate) == (
        0.1, 0.2, 0.3)  # fmt: skip
    assert (settings.rate, settings.count, settings.progress_interval) == (350.0, 99, 1.5)
    assert settings.ledger_path == tmp_path / "l.json"
    assert (publishing.linger_ms, publishing.batch_size, publishing.compression) == (
        0, 1024, "none")  # fmt: skip
    assert start == datetime(2026, 11, 29, 20, 0, tzinfo=UTC)


def test_a_random_seed_is_chosen_when_none_is_given(captured):
    cli.main([])
    cli.main([])
    assert captured.calls[0][0].seed != captured.calls[1][0].seed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate", "-5"], "--rate: must be a positive number"),
        (["--rate", "0"], "--rate: must be a positive number"),
        (["--rate", "fast"], "--rate: not a number"),
        (["--customers", "0"], "--customers: must be at least 1"),
        (["--count", "-1"], "--count: must be at least 1"),
        (["--duration", "0"], "--duration: must be a positive number"),
        (["--duration", "5", "--count", "5"], "not allowed with argument"),
        (["--invalid-rate", "1.5"], "--invalid-rate: must be in [0, 1)"),
        (["--malformed-rate", "0.6", "--invalid-rate", "0.6"], "must not exceed 1"),
        (["--compression", "lz4"], "invalid choice"),
        (["--start", "2026-11-29T20:00:00"], "needs a UTC offset"),
        (["--linger-ms", "-1"], "must not be negative"),
    ],
)
def test_bad_input_is_a_clear_usage_error(captured, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert captured.calls == []
