"""The heartbeat streaming job: Kafka -> validate/quarantine -> PostgreSQL, exactly once.

Read top-down: runtime.job builds the one query (Kafka source -> transforms.validation ->
sinks.readings_sink); the sink stages each batch and commits it in one transaction
(sinks.batch_commit: readings, rollups, alert state via transforms.episodes), then publishes
alerts (sinks.alert_outbox). config is the job's view of the shared settings.
"""
