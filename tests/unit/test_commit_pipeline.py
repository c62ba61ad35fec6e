"""The commit pipeline (sinks/commit_pipeline.py): at most one commit in flight, the next waits
for it and raises its failure; without overlap each submit returns after its own commit."""

from __future__ import annotations

import threading

import pytest

from heartbeat_stream.sinks.commit_pipeline import CommitPipeline

pytestmark = pytest.mark.unit


class Gate:
    """A commit that runs until the test opens its gate, recording when it started and ended."""

    def __init__(self, name: str, events: list[str], fail: bool = False) -> None:
        self.name, self.events, self.fail = name, events, fail
        self.started, self.opened = threading.Event(), threading.Event()

    def __call__(self) -> None:
        self.events.append(f"{self.name} start")
        self.started.set()
        assert self.opened.wait(10), "the test never opened the gate"
        self.events.append(f"{self.name} end")
        if self.fail:
            raise RuntimeError(f"{self.name} failed")


def test_submit_returns_while_its_commit_runs_and_the_next_waits_for_it():
    events: list[str] = []
    pipeline = CommitPipeline(overlap=True)
    first, second = Gate("first", events), Gate("second", events)
    pipeline.submit(first)
    assert first.started.wait(10)
    events.append("submit returned")  # while `first` is still blocked
    submitted = threading.Thread(target=pipeline.submit, args=(second,))
    submitted.start()
    submitted.join(0.3)
    assert submitted.is_alive(), "the second submit did not wait for the first commit"
    first.opened.set()
    submitted.join(10)
    second.opened.set()
    pipeline.close()
    assert events == ["first start", "submit returned", "first end", "second start", "second end"]


def test_a_failed_commit_is_raised_by_the_next_submit_and_reported_before():
    events: list[str] = []
    pipeline = CommitPipeline(overlap=True)
    failing = Gate("failing", events, fail=True)
    pipeline.submit(failing)
    assert pipeline.failure() is None  # still running
    failing.opened.set()
    pipeline._pending.exception(10)  # wait for it to end
    assert isinstance(pipeline.failure(), RuntimeError)
    never = Gate("never", events)
    with pytest.raises(RuntimeError, match="failing failed"):
        pipeline.submit(never)
    assert "never start" not in events
    pipeline.close()


def test_without_overlap_submit_returns_after_its_commit_and_raises_its_failure():
    events: list[str] = []
    pipeline = CommitPipeline(overlap=False)
    done = Gate("done", events)
    done.opened.set()
    pipeline.submit(done)
    assert events == ["done start", "done end"]
    failing = Gate("failing", events, fail=True)
    failing.opened.set()
    with pytest.raises(RuntimeError, match="failing failed"):
        pipeline.submit(failing)
    pipeline.close()
