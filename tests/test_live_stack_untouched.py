"""The run left the live stack of this checkout as it found it (runs last: see conftest.py).

Row counts of the main tables, end offsets of every live topic, the live cluster's databases and
roles, and the pids of the supervised programs, recorded when the session started, compared
now. What the live stack's own running programs write is left out (tests/support/live_stack.py).
"""

from __future__ import annotations

import pytest

from heartbeat_ops import supervisor
from heartbeat_ops.config import GENERATED_SECRETS, ROOT
from heartbeat_ops.programs import all_programs
from tests.support import held_secrets, live_stack

pytestmark = pytest.mark.live_untouched


def test_live_stack_is_untouched_by_the_run(live):
    if live is None:
        pytest.skip(f"no live stack of this checkout is running ({supervisor.pid_path()})")
    config, before = live.config, live.before
    if isinstance(before, Exception):
        pytest.fail(f"the live stack was running but could not be recorded: {before!r}")
    # Not vacuous: the snapshot read the live schema, broker and supervised processes.
    assert before.rows["schema_migrations"] > 0 and config.kafka_topic in before.offsets
    assert before.pids.get("postgres") and before.pids.get("kafka"), before.pids
    after = live_stack.take(config)
    assert live_stack.differences(config, before, after) == []


def _superset_secrets() -> set[str]:
    """The four superset/run.sh lets Superset hold (it filters its own, natively too)."""
    for line in (ROOT / "superset" / "run.sh").read_text().splitlines():
        if line.startswith("SUPERSET_SECRETS="):
            return set(line.split("=", 1)[1].strip('"').split())
    raise AssertionError("superset/run.sh names no SUPERSET_SECRETS")


def test_each_live_program_holds_only_its_own_secrets(live):
    """Read from the running processes (/proc/PID/environ: what the program was started with,
    after ops/with-secrets.sh): supervisord hands every program the whole stack's secrets."""
    if live is None or isinstance(live.before, Exception):
        pytest.skip("no live stack of this checkout is running, or it could not be recorded")
    own = {p.name: set(p.secrets or ()) for p in all_programs(live.config)}
    own["superset"] = _superset_secrets()
    running = {name: pid for name, pid in live.before.pids.items() if pid and name in own}
    checked = {name: held_secrets.of_process(pid) for name, pid in running.items()}
    assert "postgres" in checked and "kafka" in checked, live.before.pids
    for name, held in checked.items():
        generated = own[name] & set(GENERATED_SECRETS)  # the SMTP password is the operator's
        assert generated <= held <= own[name], (name, sorted(held))
