-- The job's role may delete raw rows and metrics for retention only: never a row younger than a
-- day (retention horizons are whole days, at least 1). Enforced here, in the database, so a bug
-- or a stolen credential cannot empty the tables; the superuser (migrations, operators) is exempt.

CREATE FUNCTION heartbeat_retention_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('is_superuser') = 'on' THEN
        RETURN OLD;
    END IF;
    IF (to_jsonb(OLD) ->> TG_ARGV[0])::timestamptz > now() - interval '1 day' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'insufficient_privilege',
            MESSAGE = format('%I: only rows older than 1 day may be deleted (retention)',
                             TG_TABLE_NAME);
    END IF;
    RETURN OLD;
END
$$;

CREATE TRIGGER heart_rate_readings_retention_only BEFORE DELETE ON heart_rate_readings
    FOR EACH ROW EXECUTE FUNCTION heartbeat_retention_guard('timestamp');
CREATE TRIGGER rejected_readings_retention_only BEFORE DELETE ON rejected_readings
    FOR EACH ROW EXECUTE FUNCTION heartbeat_retention_guard('ingested_at');
CREATE TRIGGER pipeline_metrics_retention_only BEFORE DELETE ON pipeline_metrics
    FOR EACH ROW EXECUTE FUNCTION heartbeat_retention_guard('batch_time');
