-- A channel whose deliveries go dead tells nobody by itself (README, "Notifications"). Its
-- failure is a critical `delivery_failing` notice: opened by its first dead delivery and sent
-- to every other channel that takes the kind, counted (never sent again) while more of its
-- deliveries go dead, and resolved (sent again) once it has delivered and none of its
-- deliveries has gone dead for HEARTBEAT_NOTIFY_RECOVERED_AFTER_SECONDS, or when it is removed.
--   alert_id      the notice's alert id (heartbeat_contract.alerts.delivery_failing_event):
--                 what its notifications carry and what `alerts ack` takes
--   channel       which channel, without secrets (a webhook's scheme and host, an address)
--   dead          dead deliveries while open; last_dead_at the latest, last_error its error
CREATE TABLE notify_channel_failures (
    alert_id     text        PRIMARY KEY,
    channel_id   bigint      NOT NULL REFERENCES notify_channels (id),
    channel      text        NOT NULL,
    started_at   timestamptz NOT NULL,
    last_dead_at timestamptz NOT NULL,
    dead         integer     NOT NULL DEFAULT 1,
    last_error   text,
    ended_at     timestamptz
);
-- One open notice per channel, however many notifiers see its deliveries go dead.
CREATE UNIQUE INDEX notify_channel_failures_open ON notify_channel_failures (channel_id)
    WHERE ended_at IS NULL;
-- Has a failing channel delivered since its last dead delivery?
CREATE INDEX notify_deliveries_delivered ON notify_deliveries (channel_id, delivered_at)
    WHERE outcome = 'delivered';

GRANT SELECT, INSERT, UPDATE ON notify_channel_failures TO heartbeat_notifying;
GRANT SELECT ON notify_channel_failures TO heartbeat_readonly;
