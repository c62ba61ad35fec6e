-- The notifier's figures on the pipeline-health table: one row per interval with query_name
-- 'notifier' (the job's rows are 'readings'; the health charts filter to those). The columns the
-- job fills keep a meaning for the notifier's rows: input_rows = alert events read in the
-- interval, processed_rows_per_second = deliveries finished per second, batch_duration_ms = the
-- interval's length, kafka_lag = the notifier group's consumer lag on the alerts topic. `details`
-- holds what has no column: deliveries per channel and outcome, delivery latency percentiles.
ALTER TABLE pipeline_metrics ADD COLUMN details jsonb;

-- Insert only: it never reads, changes or deletes the job's figures.
GRANT INSERT ON pipeline_metrics TO heartbeat_notifying;
