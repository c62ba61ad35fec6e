"""Exact outlier shares per block of messages."""

from __future__ import annotations

from itertools import islice, pairwise
from random import Random

import pytest

from heartbeat_producer.quota import INVALID, MALFORMED, NORMAL, expected_count, outlier_plan

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("malformed", "invalid", "block"),
    [(0.0, 0.0, 1000), (0.001, 0.005, 1000), (0.123, 0.3, 1000), (0.5, 0.5, 1000),
     (0.0004, 0.0, 1000), (0.3, 0.0, 1), (0.0, 0.7, 1), (0.2, 0.3, 7), (0.01, 0.02, 100)],
)  # fmt: skip
def test_counts_are_exact_after_whole_blocks(malformed, invalid, block):
    plan = outlier_plan(Random(1), malformed, invalid, block)
    taken = list(islice(plan, 10 * block))
    assert taken.count(MALFORMED) == expected_count(10 * block, malformed)
    assert taken.count(INVALID) == expected_count(10 * block, invalid)
    assert set(taken) <= {NORMAL, MALFORMED, INVALID}


def test_when_both_quotas_cannot_fit_a_tiny_block_invalid_yields():
    taken = list(islice(outlier_plan(Random(1), 0.5, 0.5, block=1), 100))
    assert taken.count(MALFORMED) == 50
    assert taken.count(MALFORMED) + taken.count(INVALID) <= 100


def test_positions_are_random_not_periodic():
    first = list(islice(outlier_plan(Random(1), 0.01, 0.0), 10_000))
    positions = [i for i, kind in enumerate(first) if kind == MALFORMED]
    gaps = {b - a for a, b in pairwise(positions)}
    assert len(gaps) > 20
    assert first != list(islice(outlier_plan(Random(2), 0.01, 0.0), 10_000))
