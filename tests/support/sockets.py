"""Which addresses processes listen on, read from /proc (no ss/netstat needed); free ports."""

from __future__ import annotations

import ipaddress
import os
import random
import socket
from contextlib import ExitStack
from pathlib import Path

_LISTEN = "0A"


# The tests' listeners take ports below the kernel's ephemeral range (32768-60999 here), each
# pytest-xdist worker from a slice of its own. A port from bind(0) lies in the ephemeral range:
# when a test stops its world's PostgreSQL or broker for a while, another worker's bind(0), or
# any outgoing connection's local port, could take that port and the restart would meet a
# stranger there. In its own slice a port is reused only by its own worker, one test at a time.
PORTS_FROM, PORTS_TO = 20000, 32000


def _slice() -> range:
    """This process's ports: slice 0 for a plain pytest or a benchmark, slice N+1 for gwN."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    index = int(worker.removeprefix("gw")) + 1 if worker.startswith("gw") else 0
    size = (PORTS_TO - PORTS_FROM) // (workers + 1)
    return range(PORTS_FROM + index * size, PORTS_FROM + (index + 1) * size)


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports of this worker's slice, free on loopback right now (held
    together while chosen)."""
    candidates = random.sample(_slice(), len(_slice()))
    with ExitStack() as stack:
        chosen: list[int] = []
        for port in candidates:
            probe = stack.enter_context(socket.socket())
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken: a listener of this worker, or something else's
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError(f"no {count} free ports in {_slice()}")


def free_port() -> int:
    (port,) = free_ports(1)
    return port


def _decode(hex_address: str) -> str:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        address = ipaddress.IPv4Address(raw[::-1])
    else:  # IPv6: four little-endian 32-bit words
        address = ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))
    return f"{address}:{int(port, 16)}"


def listening_inodes() -> dict[str, str]:
    """socket inode -> "address:port" for every TCP socket in LISTEN state."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == _LISTEN:
                found[fields[9]] = _decode(fields[1])
    return found


def listening_addresses(pids: list[int]) -> dict[int, list[str]]:
    """pid -> the addresses its TCP listening sockets are bound to."""
    inodes = listening_inodes()
    result: dict[int, list[str]] = {}
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            links = [os.readlink(fd) for fd in fd_dir.iterdir()]
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
        for link in links:
            if link.startswith("socket:[") and link[8:-1] in inodes:
                result.setdefault(pid, []).append(inodes[link[8:-1]])
    return result


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0]
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def descendants(pid: int) -> list[int]:
    """pid and every process below it (supervisord's children run their own children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found
