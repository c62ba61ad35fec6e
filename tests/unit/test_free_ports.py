"""The tests' own listener ports: each xdist worker draws from a slice of its own, below the
kernel's ephemeral range, so a port a fault test leaves free for a while (a stopped PostgreSQL,
a killed broker) is never handed to another worker or taken as a connection's local port."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support import sockets

pytestmark = pytest.mark.unit


def _ephemeral_from() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def _slice_of(monkeypatch, worker: str | None, workers: int) -> range:
    if worker is None:
        monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
        monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    else:
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(workers))
    return sockets._slice()


def test_worker_slices_are_disjoint_and_below_the_ephemeral_range(monkeypatch) -> None:
    slices = [_slice_of(monkeypatch, None, 0)]
    slices += [_slice_of(monkeypatch, f"gw{n}", 3) for n in range(3)]
    taken: set[int] = set()
    for ports in slices[1:]:
        assert len(ports) >= 1000
        assert not taken & set(ports), "two workers share a port"
        taken |= set(ports)
    assert max(taken) < _ephemeral_from()
    assert all(max(s) < _ephemeral_from() for s in slices)


def test_free_ports_are_distinct_free_and_in_the_workers_slice(monkeypatch) -> None:
    mine = _slice_of(monkeypatch, "gw1", 3)
    ports = sockets.free_ports(5)
    assert len(set(ports)) == 5 and all(port in mine for port in ports)
    held = socket.socket()
    try:
        held.bind(("127.0.0.1", ports[0]))  # each was free when chosen
        held.listen()
        assert ports[0] not in sockets.free_ports(len(mine) // 2), "a listening port handed out"
    finally:
        held.close()
