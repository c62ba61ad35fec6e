-- The read replica's lag on the pipeline-health table (README, "Read replica"): the notifier's
-- 10-second round adds one row per replication slot with query_name 'replica' (query_id
-- 'replica:<slot>'; input_rows 0, batch_duration_ms the round's length). Lag in bytes is WAL the
-- primary wrote that the replica has not replayed; in seconds, the primary's replay_lag (0 when
-- the replica has replayed everything; NULL while it is disconnected: its bytes keep growing).
ALTER TABLE pipeline_metrics
    ADD COLUMN replica_lag_bytes bigint,
    ADD COLUMN replica_lag_seconds double precision;

-- pg_stat_replication's lag columns are shown only to superusers and pg_read_all_stats. This
-- function, the superuser's, gives out exactly the lag figures and nothing else of the
-- replication state: its caller needs no statistics role.
CREATE FUNCTION heartbeat_replica_lag()
RETURNS TABLE (slot_name text, streaming boolean, lag_bytes bigint, lag_seconds double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.slot_name::text,
           r.pid IS NOT NULL,
           pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(r.replay_lsn, s.restart_lsn))::bigint,
           CASE
               WHEN r.pid IS NULL THEN NULL
               WHEN r.replay_lsn = pg_current_wal_lsn() THEN 0
               ELSE extract(epoch FROM coalesce(r.replay_lag, interval '0'))::double precision
           END
    FROM pg_replication_slots s
    LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
    WHERE s.slot_type = 'physical'
$$;
REVOKE ALL ON FUNCTION heartbeat_replica_lag() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION heartbeat_replica_lag() TO heartbeat_notifying;
