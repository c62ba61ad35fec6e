-- A channel that reaches nobody tells nobody by itself (README, "Notifications"). Its failure
-- is a critical `delivery_failing` notice: opened by its first dead delivery, or by a pending
-- delivery that has waited HEARTBEAT_NOTIFY_LATE_SECONDS (a receiver too slow for its
-- traffic), and sent to every other channel that takes the kind; counted, never sent again,
-- while it goes on failing; resolved (sent again) once the channel has delivered and shown no
-- sign of failing for HEARTBEAT_NOTIFY_RECOVERED_AFTER_SECONDS, or when it is removed.
--   alert_id        the notice's alert id (heartbeat_contract.alerts.delivery_failing_event):
--                   what its notifications carry and what `alerts ack` takes
--   channel         which channel, without secrets (a webhook's scheme and host, an address)
--   dead            dead deliveries while open
--   last_failed_at  its latest sign of failing (a dead delivery, or its backlog seen late)
--   last_error      what that sign was
CREATE TABLE notify_channel_failures (
    alert_id       text        PRIMARY KEY,
    channel_id     bigint      NOT NULL REFERENCES notify_channels (id),
    channel        text        NOT NULL,
    started_at     timestamptz NOT NULL,
    last_failed_at timestamptz NOT NULL,
    dead           integer     NOT NULL DEFAULT 0,
    last_error     text,
    ended_at       timestamptz
);
-- One open notice per channel, however many notifiers see it fail.
CREATE UNIQUE INDEX notify_channel_failures_open ON notify_channel_failures (channel_id)
    WHERE ended_at IS NULL;
-- Has a failing channel delivered since its last sign of failing?
CREATE INDEX notify_deliveries_delivered ON notify_deliveries (channel_id, delivered_at)
    WHERE outcome = 'delivered';

GRANT SELECT, INSERT, UPDATE ON notify_channel_failures TO heartbeat_notifying;
GRANT SELECT ON notify_channel_failures TO heartbeat_readonly;
