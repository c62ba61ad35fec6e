"""Which secrets a program holds: ops/with-secrets.sh's rule (a variable named *PASSWORD,
*_TOKEN or *SECRET_KEY) over an environment, or over a running process's."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

SECRET_SUFFIXES = ("PASSWORD", "_TOKEN", "SECRET_KEY")


def among(environment: Mapping[str, str]) -> set[str]:
    """The secrets set to a non-empty value in `environment`."""
    return {name for name, value in environment.items() if name.endswith(SECRET_SUFFIXES) and value}


def of_process(pid: int) -> set[str]:
    """The secrets a process was started with (/proc/PID/environ)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return among(dict(entry.split("=", 1) for entry in raw.split("\0") if "=" in entry))
