-- What a channel is owed lives in the delivery log, not in the notifier's Kafka offset
-- (README, "Notifications"). The notifier records a pending row per (channel, event) with the
-- event itself as soon as it reads the event, commits its offset past it, and delivers from
-- the log: a dead receiver's backlog waits here, and reading (and every other channel) goes
-- on. Before, the offset waited for every delivery, and once 1,000 events waited on one dead
-- receiver, reading paused for every channel.
--   event        the alert event as read (what the message is built from); NULL only on rows
--                made before this migration, which the next read of their event fills in
--   seq          the order rows were recorded in: an alert's events reach a channel in it
--   leased_by    the notifier delivering the row now (host/group/listen address), so that two
--   leased_until notifiers never send it at once; a lease not renewed runs out, and a peer
--                (or the same notifier restarted) takes the row over
ALTER TABLE notify_deliveries
    ADD COLUMN event        jsonb,
    ADD COLUMN seq          bigint GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN leased_by    text,
    ADD COLUMN leased_until timestamptz;

-- A channel's due rows in order, and an alert's older pending row on the channel: both among
-- pending rows only, a handful unless a receiver is down.
CREATE INDEX notify_deliveries_due ON notify_deliveries (channel_id, seq)
    WHERE outcome = 'pending';
CREATE INDEX notify_deliveries_alert_due ON notify_deliveries (channel_id, alert_id, seq)
    WHERE outcome = 'pending';
