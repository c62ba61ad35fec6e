"""heartbeat-notifier: alert lifecycle events from Kafka to people (signed webhooks, e-mail),
with retries, a delivery log in PostgreSQL and acknowledgements (README, "Notifications")."""
