"""The heartbeat streaming job: Kafka -> validate/quarantine -> PostgreSQL, exactly once."""
