-- A staged row's batch key (sink_id, batch_id) comes from the connection that writes it. The job
-- joined the key to every row from a one-row broadcast, so that a batch id, which changes every
-- micro-batch, stayed out of the code Spark compiles; but a broadcast is a Spark job of its own
-- (plus its planning and adaptive execution), paid by every micro-batch, however small. Now each
-- JDBC connection of a batch's write sets two session settings in its startup options
-- (readings_sink.stage_key_options) and the columns default to them. A connection that sets no
-- key cannot stage a row without one: current_setting raises for a setting never set.
ALTER TABLE stage_messages
    ALTER COLUMN sink_id SET DEFAULT current_setting('heartbeat.stage_sink_id'),
    ALTER COLUMN batch_id SET DEFAULT current_setting('heartbeat.stage_batch_id')::bigint;
