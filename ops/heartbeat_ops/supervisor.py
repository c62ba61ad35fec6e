"""Start, stop and query supervisord, which owns every long-lived process of the native stack."""

from __future__ import annotations

import os
import subprocess
import time
import xmlrpc.client
from pathlib import Path

from .config import StackConfig, var_dir
from .programs import all_programs, render_supervisord_conf, venv_bin


def conf_path() -> Path:
    return var_dir() / "supervisord.conf"


def pid_path() -> Path:
    return var_dir() / "run" / "supervisord.pid"


def is_running() -> bool:
    """True if the supervisord recorded in our pid file is alive."""
    try:
        pid = int(pid_path().read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False
    return True


def write_conf(config: StackConfig) -> None:
    for sub in ("run", "log"):
        (var_dir() / sub).mkdir(parents=True, exist_ok=True)
    conf_path().write_text(render_supervisord_conf(config, all_programs(config)))


def start(config: StackConfig) -> bool:
    """Launch supervisord with the stack's environment; True if it was started now.

    An already running supervisord re-reads its config, so new programs appear without a restart.
    """
    if is_running():
        ctl("reread")
        ctl("update")
        return False
    env = {**os.environ, **config.environment()}
    subprocess.run([venv_bin("supervisord"), "-c", str(conf_path())], env=env, check=True)
    return True


def ctl(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_bin("supervisorctl"), "-c", str(conf_path()), *args],
        capture_output=True,
        text=True,
        check=check,
    )


def start_without_waiting(names: list[str]) -> None:
    """Ask supervisord to start programs and return at once, so slow starters overlap.

    supervisorctl waits for each program's startsecs in turn; the XML-RPC API can skip that.
    Already running programs are left alone.
    """
    from supervisor.xmlrpc import SupervisorTransport  # the venv's supervisor package

    socket = f"unix://{var_dir() / 'run' / 'supervisor.sock'}"
    proxy = xmlrpc.client.ServerProxy("http://localhost", SupervisorTransport(None, None, socket))
    for name in names:
        try:
            proxy.supervisor.startProcess(name, False)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise


def states() -> dict[str, str]:
    """program name -> supervisor state (RUNNING, STARTING, BACKOFF, FATAL, STOPPED, ...)."""
    if not is_running():
        return {}
    result = {}
    for line in ctl("status").stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            result[parts[0]] = parts[1]
    return result


def shutdown(timeout: float = 120.0) -> bool:
    """Stop every program and supervisord itself; True if something was running."""
    if not is_running():
        return False
    pid = int(pid_path().read_text().strip())
    ctl("shutdown")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    raise TimeoutError(f"supervisord (pid {pid}) still running after {timeout:.0f}s")
