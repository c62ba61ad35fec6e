-- What the dashboards read for long ranges, and a customer on quarantined rows.
--
-- Hourly rollups, per customer (heart_rate_hour) and over all customers (heart_rate_hour_total),
-- kept equal to SQL over heart_rate_minute by statement triggers on it: whatever writes minutes
-- (the job's batch transaction, the history loader, a migration) moves the hours in the same
-- statement and transaction, so no writer has to know about them. Inserted and updated minutes
-- are added as deltas (the sink only ever grows a minute: more readings, a lower min, a higher
-- max), so concurrent writers add under the row lock; deleted minutes (tests, the loader's
-- delete) make their hours be recomputed from the minutes left.
-- A 30-day range then reads 720 rows for all customers, or 720 for one, instead of millions.

CREATE TABLE heart_rate_hour (
    customer_id text        NOT NULL,
    hour        timestamptz NOT NULL,  -- start of the UTC hour
    readings    integer     NOT NULL CHECK (readings > 0),
    sum_bpm     bigint      NOT NULL,
    min_bpm     smallint    NOT NULL,
    max_bpm     smallint    NOT NULL,
    bpm_bins    integer[]   NOT NULL CHECK (cardinality(bpm_bins) = 29),
    avg_bpm     double precision GENERATED ALWAYS AS (sum_bpm::double precision / readings) STORED,
    PRIMARY KEY (customer_id, hour)
);
-- The all-customer recompute finds an hour's rows by it.
CREATE INDEX heart_rate_hour_hour ON heart_rate_hour (hour);

CREATE TABLE heart_rate_hour_total (
    hour      timestamptz NOT NULL PRIMARY KEY,
    readings  bigint      NOT NULL CHECK (readings >= 0),  -- 0 only until removed
    sum_bpm   bigint      NOT NULL,
    min_bpm   smallint    NOT NULL,
    max_bpm   smallint    NOT NULL,
    bpm_bins  integer[]   NOT NULL CHECK (cardinality(bpm_bins) = 29),
    customers integer     NOT NULL,  -- customers with readings in the hour
    avg_bpm   double precision
        GENERATED ALWAYS AS (sum_bpm::double precision / NULLIF(readings, 0)) STORED
);

CREATE FUNCTION heart_rate_hour_add_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO heart_rate_hour AS stored
        (customer_id, hour, readings, sum_bpm, min_bpm, max_bpm, bpm_bins)
    SELECT customer_id, date_trunc('hour', minute, 'UTC'), sum(readings), sum(sum_bpm),
           min(min_bpm), max(max_bpm),
           ARRAY[
               sum(bpm_bins[1]), sum(bpm_bins[2]), sum(bpm_bins[3]), sum(bpm_bins[4]),
               sum(bpm_bins[5]), sum(bpm_bins[6]), sum(bpm_bins[7]), sum(bpm_bins[8]),
               sum(bpm_bins[9]), sum(bpm_bins[10]), sum(bpm_bins[11]), sum(bpm_bins[12]),
               sum(bpm_bins[13]), sum(bpm_bins[14]), sum(bpm_bins[15]), sum(bpm_bins[16]),
               sum(bpm_bins[17]), sum(bpm_bins[18]), sum(bpm_bins[19]), sum(bpm_bins[20]),
               sum(bpm_bins[21]), sum(bpm_bins[22]), sum(bpm_bins[23]), sum(bpm_bins[24]),
               sum(bpm_bins[25]), sum(bpm_bins[26]), sum(bpm_bins[27]), sum(bpm_bins[28]),
               sum(bpm_bins[29])
           ]::integer[]
    FROM new_minutes
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (customer_id, hour) DO UPDATE SET
        readings = stored.readings + EXCLUDED.readings,
        sum_bpm = stored.sum_bpm + EXCLUDED.sum_bpm,
        min_bpm = least(stored.min_bpm, EXCLUDED.min_bpm),
        max_bpm = greatest(stored.max_bpm, EXCLUDED.max_bpm),
        bpm_bins = add_bins(stored.bpm_bins, EXCLUDED.bpm_bins);
    RETURN NULL;
END
$$;

CREATE FUNCTION heart_rate_hour_add_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE heart_rate_hour AS stored SET
        readings = stored.readings + d.readings,
        sum_bpm = stored.sum_bpm + d.sum_bpm,
        min_bpm = least(stored.min_bpm, d.min_bpm),
        max_bpm = greatest(stored.max_bpm, d.max_bpm),
        bpm_bins = add_bins(stored.bpm_bins, d.bpm_bins)
    FROM (
        SELECT n.customer_id, date_trunc('hour', n.minute, 'UTC') AS hour,
               sum(n.readings - o.readings) AS readings, sum(n.sum_bpm - o.sum_bpm) AS sum_bpm,
               min(n.min_bpm) AS min_bpm, max(n.max_bpm) AS max_bpm,
               ARRAY[
                   sum(n.bpm_bins[1] - o.bpm_bins[1]), sum(n.bpm_bins[2] - o.bpm_bins[2]),
                   sum(n.bpm_bins[3] - o.bpm_bins[3]), sum(n.bpm_bins[4] - o.bpm_bins[4]),
                   sum(n.bpm_bins[5] - o.bpm_bins[5]), sum(n.bpm_bins[6] - o.bpm_bins[6]),
                   sum(n.bpm_bins[7] - o.bpm_bins[7]), sum(n.bpm_bins[8] - o.bpm_bins[8]),
                   sum(n.bpm_bins[9] - o.bpm_bins[9]), sum(n.bpm_bins[10] - o.bpm_bins[10]),
                   sum(n.bpm_bins[11] - o.bpm_bins[11]), sum(n.bpm_bins[12] - o.bpm_bins[12]),
                   sum(n.bpm_bins[13] - o.bpm_bins[13]), sum(n.bpm_bins[14] - o.bpm_bins[14]),
                   sum(n.bpm_bins[15] - o.bpm_bins[15]), sum(n.bpm_bins[16] - o.bpm_bins[16]),
                   sum(n.bpm_bins[17] - o.bpm_bins[17]), sum(n.bpm_bins[18] - o.bpm_bins[18]),
                   sum(n.bpm_bins[19] - o.bpm_bins[19]), sum(n.bpm_bins[20] - o.bpm_bins[20]),
                   sum(n.bpm_bins[21] - o.bpm_bins[21]), sum(n.bpm_bins[22] - o.bpm_bins[22]),
                   sum(n.bpm_bins[23] - o.bpm_bins[23]), sum(n.bpm_bins[24] - o.bpm_bins[24]),
                   sum(n.bpm_bins[25] - o.bpm_bins[25]), sum(n.bpm_bins[26] - o.bpm_bins[26]),
                   sum(n.bpm_bins[27] - o.bpm_bins[27]), sum(n.bpm_bins[28] - o.bpm_bins[28]),
                   sum(n.bpm_bins[29] - o.bpm_bins[29])
               ]::integer[] AS bpm_bins
        FROM new_minutes n JOIN old_minutes o USING (customer_id, minute)
        GROUP BY 1, 2
    ) d
    WHERE stored.customer_id = d.customer_id AND stored.hour = d.hour;
    RETURN NULL;
END
$$;

-- The hours of deleted minutes, recomputed from what is left (or removed with their last minute).
CREATE FUNCTION heart_rate_hour_recompute_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM heart_rate_hour h
    USING (SELECT DISTINCT customer_id, date_trunc('hour', minute, 'UTC') AS hour
           FROM old_minutes) a
    WHERE h.customer_id = a.customer_id AND h.hour = a.hour
      AND NOT EXISTS (SELECT FROM heart_rate_minute m
                      WHERE m.customer_id = a.customer_id AND m.minute >= a.hour
                        AND m.minute < a.hour + interval '1 hour');
    INSERT INTO heart_rate_hour AS stored
        (customer_id, hour, readings, sum_bpm, min_bpm, max_bpm, bpm_bins)
    SELECT a.customer_id, a.hour, sum(m.readings), sum(m.sum_bpm), min(m.min_bpm), max(m.max_bpm),
           ARRAY[
               sum(m.bpm_bins[1]), sum(m.bpm_bins[2]), sum(m.bpm_bins[3]), sum(m.bpm_bins[4]),
               sum(m.bpm_bins[5]), sum(m.bpm_bins[6]), sum(m.bpm_bins[7]), sum(m.bpm_bins[8]),
               sum(m.bpm_bins[9]), sum(m.bpm_bins[10]), sum(m.bpm_bins[11]), sum(m.bpm_bins[12]),
               sum(m.bpm_bins[13]), sum(m.bpm_bins[14]), sum(m.bpm_bins[15]), sum(m.bpm_bins[16]),
               sum(m.bpm_bins[17]), sum(m.bpm_bins[18]), sum(m.bpm_bins[19]), sum(m.bpm_bins[20]),
               sum(m.bpm_bins[21]), sum(m.bpm_bins[22]), sum(m.bpm_bins[23]), sum(m.bpm_bins[24]),
               sum(m.bpm_bins[25]), sum(m.bpm_bins[26]), sum(m.bpm_bins[27]), sum(m.bpm_bins[28]),
               sum(m.bpm_bins[29])
           ]::integer[]
    FROM (SELECT DISTINCT customer_id, date_trunc('hour', minute, 'UTC') AS hour
          FROM old_minutes) a
    JOIN heart_rate_minute m ON m.customer_id = a.customer_id AND m.minute >= a.hour
                            AND m.minute < a.hour + interval '1 hour'
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (customer_id, hour) DO UPDATE SET
        readings = EXCLUDED.readings, sum_bpm = EXCLUDED.sum_bpm, min_bpm = EXCLUDED.min_bpm,
        max_bpm = EXCLUDED.max_bpm, bpm_bins = EXCLUDED.bpm_bins;
    RETURN NULL;
END
$$;

CREATE TRIGGER heart_rate_minute_to_hour_insert AFTER INSERT ON heart_rate_minute
    REFERENCING NEW TABLE AS new_minutes
    FOR EACH STATEMENT EXECUTE FUNCTION heart_rate_hour_add_inserted();
CREATE TRIGGER heart_rate_minute_to_hour_update AFTER UPDATE ON heart_rate_minute
    REFERENCING OLD TABLE AS old_minutes NEW TABLE AS new_minutes
    FOR EACH STATEMENT EXECUTE FUNCTION heart_rate_hour_add_updated();
CREATE TRIGGER heart_rate_minute_to_hour_delete AFTER DELETE ON heart_rate_minute
    REFERENCING OLD TABLE AS old_minutes
    FOR EACH STATEMENT EXECUTE FUNCTION heart_rate_hour_recompute_deleted();

-- All customers' hours follow heart_rate_hour by deltas (concurrent writers add under the row
-- lock, never overwrite each other); an hour whose minimum rose or maximum fell (a delete, or
-- a recomputed hour) gets its extremes recomputed from heart_rate_hour.
CREATE FUNCTION heart_rate_hour_total_extremes(hours timestamptz[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM heart_rate_hour_total WHERE hour = ANY(hours) AND customers = 0;
    UPDATE heart_rate_hour_total t SET min_bpm = e.min_bpm, max_bpm = e.max_bpm
    FROM (SELECT hour, min(min_bpm) AS min_bpm, max(max_bpm) AS max_bpm
          FROM heart_rate_hour WHERE hour = ANY(hours) GROUP BY hour) e
    WHERE t.hour = e.hour;
$$;

CREATE FUNCTION heart_rate_hour_total_add_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO heart_rate_hour_total AS stored
        (hour, readings, sum_bpm, min_bpm, max_bpm, bpm_bins, customers)
    SELECT hour, sum(readings), sum(sum_bpm), min(min_bpm), max(max_bpm),
           ARRAY[
               sum(bpm_bins[1]), sum(bpm_bins[2]), sum(bpm_bins[3]), sum(bpm_bins[4]),
               sum(bpm_bins[5]), sum(bpm_bins[6]), sum(bpm_bins[7]), sum(bpm_bins[8]),
               sum(bpm_bins[9]), sum(bpm_bins[10]), sum(bpm_bins[11]), sum(bpm_bins[12]),
               sum(bpm_bins[13]), sum(bpm_bins[14]), sum(bpm_bins[15]), sum(bpm_bins[16]),
               sum(bpm_bins[17]), sum(bpm_bins[18]), sum(bpm_bins[19]), sum(bpm_bins[20]),
               sum(bpm_bins[21]), sum(bpm_bins[22]), sum(bpm_bins[23]), sum(bpm_bins[24]),
               sum(bpm_bins[25]), sum(bpm_bins[26]), sum(bpm_bins[27]), sum(bpm_bins[28]),
               sum(bpm_bins[29])
           ]::integer[],
           count(*)
    FROM new_hours
    GROUP BY 1
    ORDER BY 1
    ON CONFLICT (hour) DO UPDATE SET
        readings = stored.readings + EXCLUDED.readings,
        sum_bpm = stored.sum_bpm + EXCLUDED.sum_bpm,
        min_bpm = least(stored.min_bpm, EXCLUDED.min_bpm),
        max_bpm = greatest(stored.max_bpm, EXCLUDED.max_bpm),
        bpm_bins = add_bins(stored.bpm_bins, EXCLUDED.bpm_bins),
        customers = stored.customers + EXCLUDED.customers;
    RETURN NULL;
END
$$;

CREATE FUNCTION heart_rate_hour_total_add_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE heart_rate_hour_total AS stored SET
        readings = stored.readings + d.readings,
        sum_bpm = stored.sum_bpm + d.sum_bpm,
        min_bpm = least(stored.min_bpm, d.min_bpm),
        max_bpm = greatest(stored.max_bpm, d.max_bpm),
        bpm_bins = add_bins(stored.bpm_bins, d.bpm_bins)
    FROM (
        SELECT n.hour, sum(n.readings - o.readings) AS readings,
               sum(n.sum_bpm - o.sum_bpm) AS sum_bpm, min(n.min_bpm) AS min_bpm,
               max(n.max_bpm) AS max_bpm,
               ARRAY[
                   sum(n.bpm_bins[1] - o.bpm_bins[1]), sum(n.bpm_bins[2] - o.bpm_bins[2]),
                   sum(n.bpm_bins[3] - o.bpm_bins[3]), sum(n.bpm_bins[4] - o.bpm_bins[4]),
                   sum(n.bpm_bins[5] - o.bpm_bins[5]), sum(n.bpm_bins[6] - o.bpm_bins[6]),
                   sum(n.bpm_bins[7] - o.bpm_bins[7]), sum(n.bpm_bins[8] - o.bpm_bins[8]),
                   sum(n.bpm_bins[9] - o.bpm_bins[9]), sum(n.bpm_bins[10] - o.bpm_bins[10]),
                   sum(n.bpm_bins[11] - o.bpm_bins[11]), sum(n.bpm_bins[12] - o.bpm_bins[12]),
                   sum(n.bpm_bins[13] - o.bpm_bins[13]), sum(n.bpm_bins[14] - o.bpm_bins[14]),
                   sum(n.bpm_bins[15] - o.bpm_bins[15]), sum(n.bpm_bins[16] - o.bpm_bins[16]),
                   sum(n.bpm_bins[17] - o.bpm_bins[17]), sum(n.bpm_bins[18] - o.bpm_bins[18]),
                   sum(n.bpm_bins[19] - o.bpm_bins[19]), sum(n.bpm_bins[20] - o.bpm_bins[20]),
                   sum(n.bpm_bins[21] - o.bpm_bins[21]), sum(n.bpm_bins[22] - o.bpm_bins[22]),
                   sum(n.bpm_bins[23] - o.bpm_bins[23]), sum(n.bpm_bins[24] - o.bpm_bins[24]),
                   sum(n.bpm_bins[25] - o.bpm_bins[25]), sum(n.bpm_bins[26] - o.bpm_bins[26]),
                   sum(n.bpm_bins[27] - o.bpm_bins[27]), sum(n.bpm_bins[28] - o.bpm_bins[28]),
                   sum(n.bpm_bins[29] - o.bpm_bins[29])
               ]::integer[] AS bpm_bins
        FROM new_hours n JOIN old_hours o USING (customer_id, hour)
        GROUP BY 1
    ) d
    WHERE stored.hour = d.hour;
    PERFORM heart_rate_hour_total_extremes(ARRAY(
        SELECT DISTINCT n.hour FROM new_hours n JOIN old_hours o USING (customer_id, hour)
        WHERE n.min_bpm > o.min_bpm OR n.max_bpm < o.max_bpm));
    RETURN NULL;
END
$$;

CREATE FUNCTION heart_rate_hour_total_remove_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE heart_rate_hour_total AS stored SET
        readings = stored.readings - d.readings,
        sum_bpm = stored.sum_bpm - d.sum_bpm,
        bpm_bins = add_bins(stored.bpm_bins, d.bpm_bins),
        customers = stored.customers - d.customers
    FROM (
        SELECT hour, sum(readings) AS readings, sum(sum_bpm) AS sum_bpm, count(*) AS customers,
               ARRAY[
                   -sum(bpm_bins[1]), -sum(bpm_bins[2]), -sum(bpm_bins[3]), -sum(bpm_bins[4]),
                   -sum(bpm_bins[5]), -sum(bpm_bins[6]), -sum(bpm_bins[7]), -sum(bpm_bins[8]),
                   -sum(bpm_bins[9]), -sum(bpm_bins[10]), -sum(bpm_bins[11]), -sum(bpm_bins[12]),
                   -sum(bpm_bins[13]), -sum(bpm_bins[14]), -sum(bpm_bins[15]), -sum(bpm_bins[16]),
                   -sum(bpm_bins[17]), -sum(bpm_bins[18]), -sum(bpm_bins[19]), -sum(bpm_bins[20]),
                   -sum(bpm_bins[21]), -sum(bpm_bins[22]), -sum(bpm_bins[23]), -sum(bpm_bins[24]),
                   -sum(bpm_bins[25]), -sum(bpm_bins[26]), -sum(bpm_bins[27]), -sum(bpm_bins[28]),
                   -sum(bpm_bins[29])
               ]::integer[] AS bpm_bins
        FROM old_hours
        GROUP BY 1
    ) d
    WHERE stored.hour = d.hour;
    PERFORM heart_rate_hour_total_extremes(ARRAY(SELECT DISTINCT hour FROM old_hours));
    RETURN NULL;
END
$$;

CREATE TRIGGER heart_rate_hour_to_total_insert AFTER INSERT ON heart_rate_hour
    REFERENCING NEW TABLE AS new_hours
    FOR EACH STATEMENT EXECUTE FUNCTION heart_rate_hour_total_add_inserted();
CREATE TRIGGER heart_rate_hour_to_total_update AFTER UPDATE ON heart_rate_hour
    REFERENCING OLD TABLE AS old_hours NEW TABLE AS new_hours
    FOR EACH STATEMENT EXECUTE FUNCTION heart_rate_hour_total_add_updated();
CREATE TRIGGER heart_rate_hour_to_total_delete AFTER DELETE ON heart_rate_hour
    REFERENCING OLD TABLE AS old_hours
    FOR EACH STATEMENT EXECUTE FUNCTION heart_rate_hour_total_remove_deleted();

-- The hours of every minute stored so far (the triggers fill the all-customer hours).
INSERT INTO heart_rate_hour (customer_id, hour, readings, sum_bpm, min_bpm, max_bpm, bpm_bins)
SELECT customer_id, date_trunc('hour', minute, 'UTC'), sum(readings), sum(sum_bpm),
       min(min_bpm), max(max_bpm),
       ARRAY[
           sum(bpm_bins[1]), sum(bpm_bins[2]), sum(bpm_bins[3]), sum(bpm_bins[4]), sum(bpm_bins[5]),
           sum(bpm_bins[6]), sum(bpm_bins[7]), sum(bpm_bins[8]), sum(bpm_bins[9]), sum(bpm_bins[10]),
           sum(bpm_bins[11]), sum(bpm_bins[12]), sum(bpm_bins[13]), sum(bpm_bins[14]),
           sum(bpm_bins[15]), sum(bpm_bins[16]), sum(bpm_bins[17]), sum(bpm_bins[18]),
           sum(bpm_bins[19]), sum(bpm_bins[20]), sum(bpm_bins[21]), sum(bpm_bins[22]),
           sum(bpm_bins[23]), sum(bpm_bins[24]), sum(bpm_bins[25]), sum(bpm_bins[26]),
           sum(bpm_bins[27]), sum(bpm_bins[28]), sum(bpm_bins[29])
       ]::integer[]
FROM heart_rate_minute
GROUP BY 1, 2
ORDER BY 1, 2;

-- The bins of the all-customer hours, one row per hour and non-empty bin (the distribution).
CREATE VIEW heart_rate_hour_total_bins AS
SELECT t.hour, 40 + 5 * (b.ordinality - 1)::int AS bpm_bin, b.readings
FROM heart_rate_hour_total t
CROSS JOIN LATERAL unnest(t.bpm_bins) WITH ORDINALITY AS b(readings, ordinality)
WHERE b.readings > 0;

-- The customer picker lists customers from the primary key, one index probe each, instead of
-- a DISTINCT over millions of minutes.
CREATE VIEW heart_rate_customers AS
WITH RECURSIVE customers AS (
    SELECT min(customer_id) AS customer_id FROM heart_rate_hour
    UNION ALL
    SELECT (SELECT min(h.customer_id) FROM heart_rate_hour h WHERE h.customer_id > c.customer_id)
    FROM customers c
    WHERE c.customer_id IS NOT NULL
)
SELECT customer_id FROM customers WHERE customer_id IS NOT NULL;

-- A quarantined message's customer, as written in its value (a string or an integer id), when
-- it has one: the customer dashboard lists a customer's quarantined messages by it.
CREATE FUNCTION heartbeat_customer_of(raw text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(
    (regexp_match(raw, '"customer_id"\s*:\s*"((?:[^"\\]|\\.){1,64})"'))[1],
    (regexp_match(raw, '"customer_id"\s*:\s*(-?[0-9]{1,20})\s*[,}]'))[1]
);
ALTER TABLE rejected_readings
    ADD COLUMN customer_id text GENERATED ALWAYS AS (heartbeat_customer_of(raw_value)) STORED;
CREATE INDEX rejected_readings_customer ON rejected_readings (customer_id, ingested_at);

-- The episodes tables filter on the last reading's time (all customers, or one) and keep the
-- most recent: without these, a range holding fewer episodes than the table keeps made
-- PostgreSQL walk the whole started_at index.
CREATE INDEX heart_rate_alerts_last_reading ON heart_rate_alerts (last_reading_at);
CREATE INDEX heart_rate_alerts_customer_last_reading
    ON heart_rate_alerts (customer_id, last_reading_at);

-- The alerts table links each customer to the customer dashboard with its Customer filter set:
-- the native filter's state in the URL (rison, then percent-encoded), inside an HTML anchor.
CREATE FUNCTION heartbeat_url_encode(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(string_agg(
        CASE WHEN c.ch ~ '^[A-Za-z0-9._~-]$' THEN c.ch
             ELSE (SELECT string_agg('%' || upper(lpad(to_hex(get_byte(b.bytes, i)), 2, '0')), ''
                                     ORDER BY i)
                   FROM (SELECT convert_to(c.ch, 'UTF8') AS bytes) b,
                        generate_series(0, length(b.bytes) - 1) AS i)
        END, '' ORDER BY c.n), '')
    FROM regexp_split_to_table(value, '') WITH ORDINALITY AS c(ch, n)
$$;

CREATE FUNCTION heartbeat_customer_link(customer text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '<a href="/superset/dashboard/customer-detail/?native_filters='
           || heartbeat_url_encode(
                  '(NATIVE_FILTER-customer:(extraFormData:(filters:!((col:customer_id,op:IN,val:!('
                  || r.id || ')))),filterState:(value:!(' || r.id
                  || ')),id:NATIVE_FILTER-customer,ownState:()))')
           || '">'
           || replace(replace(replace(replace(replace(customer, '&', '&amp;'), '<', '&lt;'),
                                      '>', '&gt;'), '"', '&quot;'), '''', '&#39;')
           || '</a>'
    FROM (SELECT '''' || replace(replace(customer, '!', '!!'), '''', '!''') || '''' AS id) r
$$;

GRANT SELECT, INSERT, UPDATE, DELETE ON heart_rate_hour, heart_rate_hour_total
    TO heartbeat_writer;
