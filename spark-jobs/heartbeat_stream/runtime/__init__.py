"""The running job: its entry point, the metrics listener and the retention timer."""
