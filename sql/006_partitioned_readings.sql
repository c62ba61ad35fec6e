-- Raw valid readings partitioned by UTC day of event time (issue 12): retention drops whole days
-- instead of deleting rows one by one, and time-bounded queries read only the days they need.
--
-- Upgrade in place, rows kept: the 005 table is renamed, a partitioned table takes its name,
-- partitions are made for every day it holds (and around today), its rows are copied over and
-- it is dropped. migrate.py runs this file in one transaction; the job's batches wait on the
-- rename's lock until it commits (a large table takes a while: stop the job first if that
-- matters).

ALTER TABLE heart_rate_readings RENAME TO heart_rate_readings_005;
ALTER TABLE heart_rate_readings_005
    RENAME CONSTRAINT heart_rate_readings_provenance TO heart_rate_readings_005_provenance;
ALTER INDEX heart_rate_readings_customer_time RENAME TO heart_rate_readings_005_customer_time;
ALTER INDEX heart_rate_readings_time_brin RENAME TO heart_rate_readings_005_time_brin;

CREATE TABLE heart_rate_readings (
    customer_id     text        NOT NULL
        CONSTRAINT heart_rate_readings_customer_id_check
        CHECK (char_length(customer_id) BETWEEN 1 AND 64),
    "timestamp"     timestamptz NOT NULL,  -- event time from the device; the partition key
    heart_rate      smallint    NOT NULL
        CONSTRAINT heart_rate_readings_heart_rate_check CHECK (heart_rate BETWEEN 40 AND 180),
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    ingested_at     timestamptz NOT NULL DEFAULT now(),
    -- A unique key of a partitioned table must contain the partition key, so provenance gains
    -- "timestamp". For the exactly-once sink that is the same key: a Kafka message at a given
    -- (topic, partition, offset) is immutable, so a replay parses to the same timestamp, lands
    -- in the same partition and conflicts there (the sink's ON CONFLICT names this constraint).
    -- And the sink skips a batch id already in sink_progress before inserting anything.
    -- The one difference: a second job (a new checkpoint) over the same topic with another
    -- HEARTBEAT_NAIVE_TIMESTAMP_ZONE reads a naive timestamp as another instant and so would
    -- store that message again; keep the zone setting fixed per topic.
    CONSTRAINT heart_rate_readings_provenance
        PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset, "timestamp")
) PARTITION BY RANGE ("timestamp");

-- Defined on the parent, so every partition gets its own. Per-customer series and filters:
CREATE INDEX heart_rate_readings_customer_time ON heart_rate_readings (customer_id, "timestamp");
-- Ranges within a day across customers (a day at 1,000 readings/s is 86M rows); rows arrive
-- roughly in event-time order, so BRIN serves them at a fraction of a B-tree's upkeep.
CREATE INDEX heart_rate_readings_time_brin ON heart_rate_readings USING brin ("timestamp");

-- Kept from 005: even a role granted DELETE by mistake cannot delete a row younger than a day.
CREATE TRIGGER heart_rate_readings_retention_only BEFORE DELETE ON heart_rate_readings
    FOR EACH ROW EXECUTE FUNCTION heartbeat_retention_guard('timestamp');

-- The partitions and their bounds, read from the catalog (not from names).
CREATE VIEW heart_rate_readings_partitions AS
SELECT c.oid::regclass AS partition,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz
           AS starts,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
           AS ends
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'public.heart_rate_readings'::regclass;

-- Daily partitions for the given UTC days, made if missing; returns how many were made.
-- The job calls it ahead of time (today-3 .. today+2, on start and on its retention timer) and,
-- in each batch's transaction, for the days of the batch's valid readings before moving them:
-- there is no DEFAULT partition, so a reading whose day has no partition yet gets one in the
-- same transaction (rolled back with it) and is never refused. The ROW EXCLUSIVE lock, held
-- to the end of the caller's transaction, keeps retention from dropping a partition between
-- this check and the caller's insert. A partition is made standalone and then attached: that
-- locks the parent in SHARE UPDATE EXCLUSIVE mode (one creator at a time; readers and writers
-- pass), where CREATE TABLE ... PARTITION OF would lock out the dashboard's readers.
CREATE FUNCTION heartbeat_ensure_readings_partitions(days date[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
AS $$
DECLARE
    day date;
    part text;
    made integer := 0;
BEGIN
    -- Valid readings are at most 5 minutes ahead; a credential cannot fill the catalog with
    -- far-future tables.
    IF EXISTS (SELECT FROM unnest(days) AS d WHERE d > (now() AT TIME ZONE 'UTC')::date + 7) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'heart_rate_readings: no partitions more than 7 days ahead';
    END IF;
    LOCK TABLE public.heart_rate_readings IN ROW EXCLUSIVE MODE;
    FOR day IN SELECT DISTINCT d FROM unnest(days) AS d WHERE d IS NOT NULL ORDER BY d LOOP
        part := 'heart_rate_readings_p' || to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass('public.' || part) IS NOT NULL;
        LOCK TABLE public.heart_rate_readings IN SHARE UPDATE EXCLUSIVE MODE;
        CONTINUE WHEN to_regclass('public.' || part) IS NOT NULL;  -- made while we waited
        EXECUTE format(
            'CREATE TABLE public.%I (LIKE public.heart_rate_readings'
            ' INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
        EXECUTE format(
            'ALTER TABLE public.heart_rate_readings ATTACH PARTITION public.%I'
            ' FOR VALUES FROM (%L) TO (%L)',
            part, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
        made := made + 1;
    END LOOP;
    RETURN made;
END
$$;

-- Retention: detach and drop every partition that ends at or before `older_than`; returns
-- their names. Refuses a horizon younger than 1 day, as 005's guard refuses such deletes, so
-- the job's role can retire old days but never drop young data. Waits at most 5 s for the
-- parent's lock (a long dashboard query), then fails; the job's next pass tries again.
CREATE FUNCTION heartbeat_drop_readings_partitions(older_than timestamptz) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
SET lock_timeout = '5s'
AS $$
DECLARE
    part regclass;
BEGIN
    IF older_than IS NULL OR older_than > now() - interval '1 day' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'insufficient_privilege',
            MESSAGE = format('heart_rate_readings: only partitions older than 1 day may be'
                             ' dropped (retention), not those before %s', older_than);
    END IF;
    IF NOT EXISTS (SELECT FROM public.heart_rate_readings_partitions WHERE ends <= older_than) THEN
        RETURN;
    END IF;
    -- The parent first, as inserts lock it: no deadlock with a batch writing an old day.
    LOCK TABLE public.heart_rate_readings IN ACCESS EXCLUSIVE MODE;
    FOR part IN
        SELECT p.partition FROM public.heart_rate_readings_partitions p
        WHERE p.ends <= older_than ORDER BY p.ends
    LOOP
        EXECUTE format('ALTER TABLE public.heart_rate_readings DETACH PARTITION %s', part);
        RETURN NEXT part::text;
        EXECUTE format('DROP TABLE %s', part);
    END LOOP;
END
$$;

-- Functions are executable by PUBLIC by default: only the job's group role may call these.
REVOKE ALL ON FUNCTION heartbeat_ensure_readings_partitions(date[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION heartbeat_drop_readings_partitions(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION heartbeat_ensure_readings_partitions(date[]) TO heartbeat_writer;
GRANT EXECUTE ON FUNCTION heartbeat_drop_readings_partitions(timestamptz) TO heartbeat_writer;

-- The existing rows: a partition for each of their days and around today, then the copy.
SELECT heartbeat_ensure_readings_partitions(ARRAY(
    SELECT DISTINCT ("timestamp" AT TIME ZONE 'UTC')::date FROM heart_rate_readings_005
    UNION
    SELECT d::date FROM generate_series((now() AT TIME ZONE 'UTC')::date - 3,
                                        (now() AT TIME ZONE 'UTC')::date + 2,
                                        interval '1 day') AS d));
INSERT INTO heart_rate_readings
    (customer_id, "timestamp", heart_rate, kafka_topic, kafka_partition, kafka_offset, ingested_at)
SELECT customer_id, "timestamp", heart_rate, kafka_topic, kafka_partition, kafka_offset, ingested_at
FROM heart_rate_readings_005;
DROP TABLE heart_rate_readings_005;

-- Grants as 002/003 gave them, less DELETE: retention drops partitions through the function
-- above, so the job's role no longer deletes raw readings at all. Partitions carry no grants
-- of the job's role: it reaches rows only through the parent, and cannot drop, truncate or
-- delete from a partition directly.
GRANT SELECT, INSERT ON heart_rate_readings TO heartbeat_writer;
GRANT SELECT ON heart_rate_readings TO heartbeat_readonly;
REVOKE ALL ON heart_rate_readings_partitions FROM heartbeat_readonly;
GRANT SELECT ON heart_rate_readings_partitions TO heartbeat_writer;
