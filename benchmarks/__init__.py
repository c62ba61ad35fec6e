"""Benchmarks: each module here has a `run()` that measures one thing and prints its figures."""
