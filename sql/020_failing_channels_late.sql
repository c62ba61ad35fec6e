-- A channel too slow for its traffic is failing too (README, "Notifications"): a pending
-- delivery that has waited HEARTBEAT_NOTIFY_LATE_SECONDS opens or refreshes its
-- delivery_failing notice, with no dead delivery. So a notice's latest sign of failing is no
-- longer always a dead delivery (last_failed_at: a dead delivery, or the backlog seen late;
-- last_error: what that sign was), and a notice opened by lateness has no dead delivery yet.
-- It resolves once the channel has delivered, has nothing waiting that long, and has shown no
-- sign of failing for HEARTBEAT_NOTIFY_RECOVERED_AFTER_SECONDS.
ALTER TABLE notify_channel_failures RENAME COLUMN last_dead_at TO last_failed_at;
ALTER TABLE notify_channel_failures ALTER COLUMN dead SET DEFAULT 0;
