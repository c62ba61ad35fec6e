-- What the dashboards need of the alert rules (issue 18, item 6): the global alert defaults as
-- the settings say (written by provisioning, never typed here), each customer's effective
-- thresholds (their own setting, else the default, saying which applies), and the customers in
-- the order worth looking at (the customer dashboard opens on the first).

-- The global defaults of the alert rules, one row, written by provisioning from the settings
-- (heartbeat_ops.alert_defaults: HEARTBEAT_ALERT_LOW_BPM/_HIGH_BPM/_SUSTAIN_SECONDS,
-- HEARTBEAT_BASELINE_MARGIN_BPM/_ELEVATED_DAYS/_MIN_DAYS, HEARTBEAT_SILENT_AFTER_SECONDS). No row until
-- provisioning ran: the dashboards then say "not provisioned" instead of guessing a number.
CREATE TABLE alert_defaults (
    singleton              boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    low_bpm                smallint    NOT NULL,
    high_bpm               smallint    NOT NULL,
    sustain_seconds        real        NOT NULL,
    baseline_margin_bpm    real        NOT NULL,
    baseline_elevated_days integer     NOT NULL,
    baseline_min_days      integer     NOT NULL,
    silent_after_seconds   real        NOT NULL,
    updated_at             timestamptz NOT NULL DEFAULT now()
);

-- Every customer the stack knows of: with readings (hourly rollups), seen by a sink, or with
-- settings of their own.
CREATE VIEW heart_rate_customers_known AS
SELECT customer_id FROM heart_rate_customers
UNION
SELECT customer_id FROM customer_activity
UNION
SELECT customer_id FROM customer_alert_settings;

-- Each customer's effective alert settings, one row per setting: the value that applies and
-- whether it is the customer's own or the global default (NULL in customer_alert_settings).
CREATE VIEW customer_alert_thresholds AS
SELECT c.customer_id, v.position, v.setting, v.value, v.applies
FROM heart_rate_customers_known c
LEFT JOIN customer_alert_settings s ON s.customer_id = c.customer_id
LEFT JOIN alert_defaults d ON true
CROSS JOIN LATERAL (VALUES
    (1, 'Low (bradycardia below, bpm)',
     coalesce(s.low_bpm, d.low_bpm)::text,
     CASE WHEN s.low_bpm IS NOT NULL THEN 'customer setting'
          WHEN d.low_bpm IS NOT NULL THEN 'global default' ELSE 'not provisioned' END),
    (2, 'High (tachycardia above, bpm)',
     coalesce(s.high_bpm, d.high_bpm)::text,
     CASE WHEN s.high_bpm IS NOT NULL THEN 'customer setting'
          WHEN d.high_bpm IS NOT NULL THEN 'global default' ELSE 'not provisioned' END),
    (3, 'Sustained for (s)',
     coalesce(s.sustain_seconds, d.sustain_seconds)::text,
     CASE WHEN s.sustain_seconds IS NOT NULL THEN 'customer setting'
          WHEN d.sustain_seconds IS NOT NULL THEN 'global default' ELSE 'not provisioned' END),
    (4, 'Muted until',
     CASE WHEN s.muted_until > now()
          THEN to_char(s.muted_until AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
          ELSE 'not muted' END,
     CASE WHEN s.muted_until > now() THEN 'customer setting' ELSE 'global default' END),
    (5, 'Baseline alerts (elevated resting)',
     CASE WHEN coalesce(s.baseline_alerts, true) THEN 'on' ELSE 'off' END,
     CASE WHEN s.baseline_alerts IS NOT NULL AND NOT s.baseline_alerts THEN 'customer setting'
          ELSE 'global default' END)
) AS v(position, setting, value, applies);

-- The customers in the order worth looking at: first those with an open (unmuted) critical
-- episode, most recent first; then those with any other open (unmuted) episode, most recent
-- first; then the rest, most recently active first (the broker time of their newest message
-- when a sink saw them, else the start of their newest hour of readings). priority 1 is the one
-- the customer dashboard opens on (its Customer filter sorts by MIN(priority), first item).
-- Cost: the open episodes (a partial index) and one index probe per customer.
CREATE VIEW heart_rate_customer_priority AS
WITH open_episodes AS (
    SELECT customer_id,
           max(started_at) FILTER (WHERE severity = 'critical') AS critical_started_at,
           max(started_at) AS started_at
    FROM heart_rate_alerts
    WHERE ended_at IS NULL AND NOT muted AND customer_id <> '*'
    GROUP BY customer_id
),
activity AS (
    SELECT customer_id, max(last_seen_at) AS last_seen_at
    FROM customer_activity GROUP BY customer_id
),
customers AS (
    SELECT customer_id FROM heart_rate_customers_known
    UNION
    SELECT customer_id FROM open_episodes
)
SELECT c.customer_id,
       row_number() OVER (ORDER BY o.critical_started_at DESC NULLS LAST,
                                   o.started_at DESC NULLS LAST,
                                   greatest(a.last_seen_at, h.hour) DESC NULLS LAST,
                                   c.customer_id) AS priority,
       CASE WHEN o.critical_started_at IS NOT NULL THEN 'open critical episode'
            WHEN o.started_at IS NOT NULL THEN 'open episode'
            ELSE 'recently active' END AS reason,
       greatest(a.last_seen_at, h.hour) AS last_active_at
FROM customers c
LEFT JOIN open_episodes o ON o.customer_id = c.customer_id
LEFT JOIN activity a ON a.customer_id = c.customer_id
LEFT JOIN LATERAL (
    SELECT max(hour) AS hour FROM heart_rate_hour h WHERE h.customer_id = c.customer_id
) h ON true;

GRANT SELECT ON alert_defaults, heart_rate_customers_known, customer_alert_thresholds,
    heart_rate_customer_priority TO heartbeat_readonly;
