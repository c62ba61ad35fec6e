"""What writes: the foreachBatch sink and the SQL it runs in PostgreSQL, one transaction per
batch, and the alert outbox to Kafka."""
