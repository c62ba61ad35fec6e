-- The notifier prunes its own delivery log (README, "Notifications"): delivered, dead and
-- suppressed deliveries older than HEARTBEAT_RAW_RETENTION_DAYS. Its role may delete for that
-- only, like the job's retention (sql/005): never a pending delivery (work not done yet) and
-- never a row younger than a day. Enforced here, in the database; the superuser is exempt.

CREATE FUNCTION heartbeat_delivery_retention_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('is_superuser') = 'on' THEN
        RETURN OLD;
    END IF;
    IF OLD.outcome = 'pending' OR OLD.created_at > now() - interval '1 day' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'insufficient_privilege',
            MESSAGE = format('%I: only finished deliveries older than 1 day may be deleted'
                             ' (retention)', TG_TABLE_NAME);
    END IF;
    RETURN OLD;
END
$$;

CREATE TRIGGER notify_deliveries_retention_only BEFORE DELETE ON notify_deliveries
    FOR EACH ROW EXECUTE FUNCTION heartbeat_delivery_retention_guard();

-- The prune finds old rows by their creation time.
CREATE INDEX notify_deliveries_created ON notify_deliveries (created_at);

GRANT DELETE ON notify_deliveries TO heartbeat_notifying;
