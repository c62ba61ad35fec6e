-- What the dashboard reads instead of scanning raw readings: per-minute rollups, alert episodes,
-- and the pipeline's own health. All three are written by the streaming job with upserts keyed so
-- that a replayed micro-batch changes nothing.

CREATE TABLE heart_rate_minute (
    customer_id text             NOT NULL,
    minute      timestamptz      NOT NULL,  -- start of the one-minute event-time window
    readings    integer          NOT NULL CHECK (readings > 0),
    avg_bpm     double precision NOT NULL,
    min_bpm     smallint         NOT NULL,
    max_bpm     smallint         NOT NULL,
    -- readings per 5-bpm bin: [40-44], [45-49], ..., [175-179], [180]; 29 counts
    bpm_bins    integer[]        NOT NULL CHECK (cardinality(bpm_bins) = 29),
    updated_at  timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, minute)     -- also serves one customer's series over time
);
-- "Average heart rate over time" across all customers filters and groups by minute.
CREATE INDEX heart_rate_minute_minute ON heart_rate_minute (minute);

-- The heart-rate distribution from the rollups, one row per (customer, minute, non-empty bin),
-- so the histogram never scans raw readings.
CREATE VIEW heart_rate_minute_bins AS
SELECT m.customer_id, m.minute, 40 + 5 * (b.ordinality - 1)::int AS bpm_bin, b.readings
FROM heart_rate_minute m
CROSS JOIN LATERAL unnest(m.bpm_bins) WITH ORDINALITY AS b(readings, ordinality)
WHERE b.readings > 0;

CREATE TABLE heart_rate_alerts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sink_id         text        NOT NULL,  -- the streaming job (checkpoint) that detected it
    customer_id     text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('tachycardia', 'bradycardia')),
    started_at      timestamptz NOT NULL,  -- event time of the first reading past the threshold
    ended_at        timestamptz,           -- NULL while the episode is open
    extreme_bpm     smallint    NOT NULL,  -- peak for tachycardia, lowest for bradycardia
    readings        integer     NOT NULL,
    last_reading_at timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz,           -- when it went to the heart-rate-alerts topic (outbox)
    CONSTRAINT heart_rate_alerts_episode UNIQUE (sink_id, customer_id, kind, started_at)
);
-- "Open and recent episodes, most recent first".
CREATE INDEX heart_rate_alerts_started ON heart_rate_alerts (started_at DESC);
CREATE INDEX heart_rate_alerts_open ON heart_rate_alerts (customer_id) WHERE ended_at IS NULL;
CREATE INDEX heart_rate_alerts_unpublished ON heart_rate_alerts (sink_id, id)
    WHERE published_at IS NULL;

-- The alerting state machine's memory between micro-batches: per customer, the abnormal run in
-- progress (not yet, or already, an episode). Updated in the same transaction as the batch.
CREATE TABLE alert_trackers (
    sink_id         text        NOT NULL,
    customer_id     text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('tachycardia', 'bradycardia')),
    run_started_at  timestamptz NOT NULL,
    last_reading_at timestamptz NOT NULL,
    extreme_bpm     smallint    NOT NULL,
    readings        integer     NOT NULL,
    episode_open    boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (sink_id, customer_id)
);

-- The last micro-batch each sink committed, written in the batch's own transaction: a replayed
-- batch id at or below it is skipped whole, so stateful side effects (alerts) happen once.
CREATE TABLE sink_progress (
    sink_id       text        PRIMARY KEY,
    last_batch_id bigint      NOT NULL,
    committed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pipeline_metrics (
    query_id                  text             NOT NULL,  -- stable per checkpoint
    query_name                text             NOT NULL,  -- readings | rollups
    batch_id                  bigint           NOT NULL,
    run_id                    text             NOT NULL,
    batch_time                timestamptz      NOT NULL,
    input_rows                bigint           NOT NULL,
    input_rows_per_second     double precision,
    processed_rows_per_second double precision,
    batch_duration_ms         bigint           NOT NULL,
    kafka_lag                 bigint,            -- messages behind the latest offsets, if known
    PRIMARY KEY (query_id, batch_id)
);
CREATE INDEX pipeline_metrics_time ON pipeline_metrics (batch_time);

GRANT SELECT, INSERT, UPDATE, DELETE
    ON heart_rate_minute, heart_rate_alerts, pipeline_metrics, alert_trackers, sink_progress
    TO heartbeat_writer;
-- Retention: the job prunes raw rows older than its configured horizon.
GRANT DELETE ON heart_rate_readings, rejected_readings TO heartbeat_writer;
REVOKE ALL ON alert_trackers, sink_progress FROM heartbeat_readonly;
