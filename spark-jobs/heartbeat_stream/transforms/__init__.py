"""Pure transformations: a DataFrame in, a DataFrame out (validation), or plain Python over
readings (episodes). No I/O: unit-tested with chispa and plain pytest."""
