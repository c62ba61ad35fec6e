"""Runs the native heartbeat stack: install, configure, supervise, migrate, check health."""
