"""The run left the live stack of this checkout as it found it (runs last: see conftest.py).

Row counts of the main tables, end offsets of every live topic, the live cluster's databases and
roles, and the pids of the supervised programs, recorded when the session started, compared
now. What the live stack's own running programs write is left out (tests/support/live_stack.py).
"""

from __future__ import annotations

import pytest

from heartbeat_ops import supervisor
from tests.support import live_stack

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
