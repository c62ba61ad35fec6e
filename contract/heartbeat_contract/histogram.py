"""The rollups' heart-rate histogram layout, shared by the sink's SQL, the loaders and the
dashboards: one definition of which bpm falls in which bin."""

from __future__ import annotations

from .message import MAX_VALID_BPM, MIN_VALID_BPM

# The rollups' histogram: readings per BIN_WIDTH_BPM-wide bin from MIN_VALID_BPM, so bin k holds
# [40 + 5k, 44 + 5k]; the last bin holds only 180.
BIN_WIDTH_BPM = 5
BIN_COUNT = (MAX_VALID_BPM - MIN_VALID_BPM) // BIN_WIDTH_BPM + 1  # 29
