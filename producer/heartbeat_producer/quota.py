"""Exact shares of outliers: which messages are malformed or out of range, decided per block.

A coin flip per message gives the asked share only on average; tests and ledgers want it exact.
Messages are taken in blocks (default 1000): block k holds round((k+1)*B*rate) - round(k*B*rate)
outliers of each kind at random positions, so after any whole number of blocks the count is
exactly round(n * rate), and within a block it is off by less than one block's quota.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from random import Random

NORMAL, MALFORMED, INVALID = 0, 1, 2
DEFAULT_BLOCK = 1000


def _rounded(x: float) -> int:
    """Round half up (Python's round() is half-to-even, which is harder to state in a test)."""
    return math.floor(x + 0.5)


def expected_count(n: int, rate: float) -> int:
    """How many of the first n messages carry an outlier of this rate, n a multiple of the block."""
    return _rounded(n * rate)


def outlier_plan(
    rng: Random, malformed_rate: float, invalid_rate: float, block: int = DEFAULT_BLOCK
) -> Iterator[int]:
    """An endless stream of NORMAL / MALFORMED / INVALID, one per message, with exact shares."""
    if block < 1:
        raise ValueError("block must be at least 1")
    index = 0
    while True:
        start, end = index * block, (index + 1) * block
        malformed = _rounded(end * malformed_rate) - _rounded(start * malformed_rate)
        invalid = _rounded(end * invalid_rate) - _rounded(start * invalid_rate)
        invalid = min(invalid, block - malformed)  # only if the two rates add up to 1
        plan = bytearray(block)  # all NORMAL
        if malformed or invalid:
            positions = rng.sample(range(block), malformed + invalid)
            for position in positions[:malformed]:
                plan[position] = MALFORMED
            for position in positions[malformed:]:
                plan[position] = INVALID
        yield from plan
        index += 1
