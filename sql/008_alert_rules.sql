-- Alert rules v2 (issue 18): critical readings, per-customer settings, personal baselines,
-- silent devices, severity, a lifecycle (open -> resolved, reopened within a cooldown) and an
-- outbox of lifecycle events. Everything the job decides is still written in the batch's own
-- transaction (or, for silence and baselines, in a transaction of the job's timers that takes
-- the same sink_progress row lock), so every rule stays exactly once through replays.

-- The stable id of an episode, equal to heartbeat_contract.alerts.alert_id (tested):
-- sha256 of the JSON array [customer, kind, started_at as UTC ISO-8601], first 32 hex digits.
CREATE FUNCTION heartbeat_alert_id(customer text, kind text, started_at timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN left(encode(sha256(convert_to(json_build_array(
    customer, kind,
    to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
    || CASE WHEN extract(microseconds FROM started_at)::bigint % 1000000 = 0 THEN ''
            ELSE to_char(started_at AT TIME ZONE 'UTC', '.US') END
    || '+00:00')::text, 'UTF8')), 'hex'), 32);

-- Episodes of every kind. Status: open while ended_at IS NULL.
ALTER TABLE heart_rate_alerts DROP CONSTRAINT heart_rate_alerts_kind_check;
ALTER TABLE heart_rate_alerts ADD CONSTRAINT heart_rate_alerts_kind_check CHECK (kind IN (
    'tachycardia', 'bradycardia', 'critical_low', 'critical_high', 'elevated_resting',
    'device_silent', 'ingestion_silent'));
ALTER TABLE heart_rate_alerts ALTER COLUMN extreme_bpm DROP NOT NULL;  -- none for silence
ALTER TABLE heart_rate_alerts
    ADD COLUMN alert_id      text,
    ADD COLUMN severity      text    NOT NULL DEFAULT 'warning'
        CHECK (severity IN ('warning', 'critical')),
    ADD COLUMN revision      integer NOT NULL DEFAULT 0,  -- times reopened within the cooldown
    ADD COLUMN muted         boolean NOT NULL DEFAULT false,  -- recorded, never published
    ADD COLUMN threshold_bpm real,   -- the bound crossed, as set for the customer at opening
    ADD COLUMN baseline_bpm  real;   -- elevated_resting: the personal baseline at opening

CREATE FUNCTION heartbeat_alert_id_fill() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.alert_id := heartbeat_alert_id(NEW.customer_id, NEW.kind, NEW.started_at);
    RETURN NEW;
END
$$;
CREATE TRIGGER heart_rate_alerts_alert_id BEFORE INSERT ON heart_rate_alerts
    FOR EACH ROW EXECUTE FUNCTION heartbeat_alert_id_fill();
UPDATE heart_rate_alerts SET alert_id = heartbeat_alert_id(customer_id, kind, started_at);
UPDATE heart_rate_alerts SET severity = 'warning';
ALTER TABLE heart_rate_alerts ALTER COLUMN alert_id SET NOT NULL;
CREATE INDEX heart_rate_alerts_alert_id ON heart_rate_alerts (alert_id);
-- The cooldown looks up a customer's latest episode of a kind.
CREATE INDEX heart_rate_alerts_customer_kind
    ON heart_rate_alerts (sink_id, customer_id, kind, started_at DESC);
-- Open episodes by severity and age (dashboards).
CREATE INDEX heart_rate_alerts_open_severity
    ON heart_rate_alerts (severity, started_at) WHERE ended_at IS NULL;

-- The outbox: one row per lifecycle event, written in the transaction that changed the episode,
-- published (at least once) after it commits. `payload` is the exact JSON sent, so a resend is
-- byte-identical. Muted episodes write no events.
CREATE TABLE alert_events (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sink_id      text        NOT NULL,
    event_id     text        NOT NULL UNIQUE,  -- heartbeat_contract.alerts.event_id
    alert_id     text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('open', 'resolved')),
    revision     integer     NOT NULL,
    customer_id  text        NOT NULL,
    payload      text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX alert_events_unpublished ON alert_events (sink_id, id) WHERE published_at IS NULL;
CREATE INDEX alert_events_alert ON alert_events (alert_id);
-- Episodes opened before this migration were published by the old outbox (published_at on the
-- episode); one still unpublished now is not sent (stop the job before migrating to avoid it).

-- Per-customer alert settings; NULL means the global default (HEARTBEAT_ALERT_*). Read by the
-- batch transaction itself, so a change applies from the next micro-batch.
CREATE TABLE customer_alert_settings (
    customer_id     text        PRIMARY KEY,
    low_bpm         smallint    CHECK (low_bpm BETWEEN 20 AND 250),
    high_bpm        smallint    CHECK (high_bpm BETWEEN 20 AND 250),
    sustain_seconds real        CHECK (sustain_seconds > 0 AND sustain_seconds <= 86400),
    muted_until     timestamptz,
    baseline_alerts boolean     NOT NULL DEFAULT true,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text        NOT NULL DEFAULT current_user,
    CHECK (low_bpm IS NULL OR high_bpm IS NULL OR low_bpm < high_bpm)
);

-- Each alert rule's run in progress per customer: 'threshold' (tachycardia/bradycardia over
-- valid readings) and 'critical' (critical_low/high over plausible out-of-range readings).
ALTER TABLE alert_trackers ADD COLUMN rule text NOT NULL DEFAULT 'threshold'
    CHECK (rule IN ('threshold', 'critical'));
ALTER TABLE alert_trackers DROP CONSTRAINT alert_trackers_pkey;
ALTER TABLE alert_trackers ADD PRIMARY KEY (sink_id, customer_id, rule);
ALTER TABLE alert_trackers DROP CONSTRAINT alert_trackers_kind_check;
ALTER TABLE alert_trackers ADD CONSTRAINT alert_trackers_kind_check CHECK (kind IN (
    'tachycardia', 'bradycardia', 'critical_low', 'critical_high'));

-- When each customer last reached Kafka (the broker's timestamp of its newest message read,
-- valid or out of range), per sink; silent_since is set while a device_silent episode is open.
CREATE TABLE customer_activity (
    sink_id      text        NOT NULL,
    customer_id  text        NOT NULL,
    last_seen_at timestamptz NOT NULL,
    silent_since timestamptz,
    PRIMARY KEY (sink_id, customer_id)
);
-- The silence check reads only customers not yet silent, oldest first: no scan of all customers.
CREATE INDEX customer_activity_not_silent ON customer_activity (sink_id, last_seen_at)
    WHERE silent_since IS NULL;

-- How far each sink has read each partition, committed with the batch: silence is judged only
-- up to the time the topic has been read, so a backlog never looks like silence.
CREATE TABLE sink_read_positions (
    sink_id         text        NOT NULL,
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    next_offset     bigint      NOT NULL,  -- the first offset not yet committed
    last_message_at timestamptz NOT NULL,  -- broker timestamp of the last message committed
    PRIMARY KEY (sink_id, kafka_topic, kafka_partition)
);

-- The stage carries the broker timestamp of each message (for activity and read positions).
ALTER TABLE stage_messages ADD COLUMN kafka_timestamp timestamptz;

-- Personal baselines from the hourly rollups: each customer's daily resting rate, and the
-- baseline derived from the days before (README, "Personal baseline").
CREATE TABLE customer_resting_days (
    customer_id  text   NOT NULL,
    day          date   NOT NULL,  -- UTC day
    resting_bpm  real   NOT NULL,
    hours        integer NOT NULL, -- hours of data the day had
    PRIMARY KEY (customer_id, day)
);
CREATE TABLE customer_baselines (
    customer_id   text        PRIMARY KEY,
    baseline_bpm  real        NOT NULL,  -- median daily resting rate over the baseline window
    days          integer     NOT NULL,  -- days it is computed from
    latest_day    date        NOT NULL,  -- newest day with a resting rate
    latest_bpm    real        NOT NULL,  -- that day's resting rate
    computed_at   timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE, DELETE
    ON alert_events, customer_activity, sink_read_positions, customer_resting_days,
       customer_baselines
    TO heartbeat_writer;
GRANT SELECT ON customer_alert_settings TO heartbeat_writer;
GRANT SELECT ON customer_alert_settings, customer_baselines, customer_resting_days,
    customer_activity TO heartbeat_readonly;
REVOKE ALL ON alert_events, sink_read_positions FROM heartbeat_readonly;
