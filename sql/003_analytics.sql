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
    updated_at  timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, minute)     -- also serves one customer's series over time
);
-- "Average heart rate over time" across all customers filters and groups by minute.
CREATE INDEX heart_rate_minute_minute ON heart_rate_minute (minute);

CREATE TABLE heart_rate_alerts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id     text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('tachycardia', 'bradycardia')),
    started_at      timestamptz NOT NULL,  -- event time of the first reading past the threshold
    ended_at        timestamptz,           -- NULL while the episode is open
    extreme_bpm     smallint    NOT NULL,  -- peak for tachycardia, lowest for bradycardia
    readings        integer     NOT NULL,
    last_reading_at timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT heart_rate_alerts_episode UNIQUE (customer_id, kind, started_at)
);
-- "Open and recent episodes, most recent first".
CREATE INDEX heart_rate_alerts_started ON heart_rate_alerts (started_at DESC);
CREATE INDEX heart_rate_alerts_open ON heart_rate_alerts (customer_id) WHERE ended_at IS NULL;

CREATE TABLE pipeline_metrics (
    query_name                text             NOT NULL,
    batch_id                  bigint           NOT NULL,
    run_id                    text             NOT NULL,
    batch_time                timestamptz      NOT NULL,
    input_rows                bigint           NOT NULL,
    input_rows_per_second     double precision,
    processed_rows_per_second double precision,
    batch_duration_ms         bigint           NOT NULL,
    kafka_lag                 bigint,            -- messages behind the latest offsets, if known
    PRIMARY KEY (query_name, batch_id)
);
CREATE INDEX pipeline_metrics_time ON pipeline_metrics (batch_time);

GRANT SELECT, INSERT, UPDATE ON heart_rate_minute, heart_rate_alerts, pipeline_metrics
    TO heartbeat_writer;
