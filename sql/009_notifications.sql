-- The notifier (notifier/heartbeat_notifier): channels people are told on, the log of every
-- delivery of every alert event to every channel, and acknowledgements. Its login role
-- (HEARTBEAT_NOTIFIER_USER) is made a member of heartbeat_notifying by `heartbeat-ops`.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'heartbeat_notifying') THEN
        CREATE ROLE heartbeat_notifying NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO heartbeat_notifying;

-- A webhook (target = URL, format json | slack, secret = HMAC signing key) or an e-mail address
-- (format email, no secret). Filters: events of at least min_severity, of one of `kinds` (empty:
-- every kind). Removing a channel keeps its row (removed_at) so its deliveries keep their channel.
CREATE TABLE notify_channels (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transport    text        NOT NULL CHECK (transport IN ('webhook', 'email')),
    target       text        NOT NULL,
    format       text        NOT NULL CHECK (format IN ('json', 'slack', 'email')),
    min_severity text        NOT NULL DEFAULT 'warning' CHECK (min_severity IN ('warning', 'critical')),
    kinds        text[]      NOT NULL DEFAULT '{}',
    secret       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    removed_at   timestamptz,
    CHECK ((transport = 'webhook') = (secret IS NOT NULL)),
    CHECK ((transport = 'email') = (format = 'email'))
);

-- One row per (channel, event): the notifier inserts it before the first attempt, counts each
-- attempt before sending, and ends it delivered, dead (attempts exhausted or a permanent
-- refusal) or suppressed (an `open` event of an acknowledged alert). Its id is the
-- X-Heartbeat-Delivery header, the same on every attempt.
CREATE TABLE notify_deliveries (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    channel_id      bigint      NOT NULL REFERENCES notify_channels (id),
    event_id        text        NOT NULL,
    alert_id        text        NOT NULL,
    alert_status    text        NOT NULL,
    kind            text        NOT NULL,
    severity        text        NOT NULL,
    customer_id     text        NOT NULL,
    outcome         text        NOT NULL DEFAULT 'pending'
                                CHECK (outcome IN ('pending', 'delivered', 'dead', 'suppressed')),
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    http_status     integer,
    published_at    timestamptz,  -- the event's Kafka timestamp: latency = delivered_at - this
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    delivered_at    timestamptz,
    dead_at         timestamptz,
    UNIQUE (channel_id, event_id)
);
CREATE INDEX notify_deliveries_alert ON notify_deliveries (alert_id);
CREATE INDEX notify_deliveries_dead ON notify_deliveries (dead_at) WHERE outcome = 'dead';

-- Someone has seen the alert: its later `open` events are not sent again (its resolve is).
CREATE TABLE alert_acks (
    alert_id text        PRIMARY KEY,
    acked_by text        NOT NULL,
    acked_at timestamptz NOT NULL DEFAULT now(),
    note     text
);

GRANT SELECT ON notify_channels TO heartbeat_notifying;
GRANT SELECT, INSERT, UPDATE ON notify_deliveries, alert_acks TO heartbeat_notifying;
-- Dashboards show deliveries and acknowledgements, never a channel's signing secret.
REVOKE ALL ON notify_channels FROM heartbeat_readonly;
GRANT SELECT (id, transport, target, format, min_severity, kinds, created_at, removed_at)
    ON notify_channels TO heartbeat_readonly;

-- For the dashboards: episodes that need someone first (open and unacknowledged, then open and
-- acknowledged, then ended), with their age; and the deliveries that reached nobody.
CREATE VIEW alert_attention AS
SELECT a.alert_id, a.customer_id, a.kind, a.severity, a.started_at, a.ended_at,
       a.ended_at IS NULL AS is_open,
       k.acked_by, k.acked_at, k.note AS ack_note,
       coalesce(a.ended_at, now()) - a.started_at AS age,
       CASE WHEN a.ended_at IS NULL AND k.alert_id IS NULL THEN 0
            WHEN a.ended_at IS NULL THEN 1
            ELSE 2 END AS attention_rank
FROM heart_rate_alerts a
LEFT JOIN alert_acks k USING (alert_id)
WHERE NOT a.muted;

CREATE VIEW notify_dead_deliveries AS
SELECT d.dead_at, d.channel_id, c.transport, c.target, d.alert_id, d.alert_status, d.kind,
       d.severity, d.customer_id, d.attempts, d.http_status, d.last_error
FROM notify_deliveries d
JOIN notify_channels c ON c.id = d.channel_id
WHERE d.outcome = 'dead';
