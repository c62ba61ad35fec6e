-- Valid readings and quarantined messages. Every Kafka message lands in exactly one of the two,
-- keyed by its provenance (topic, partition, offset): a replayed micro-batch inserts nothing new.

CREATE TABLE heart_rate_readings (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id     text        NOT NULL CHECK (char_length(customer_id) BETWEEN 1 AND 64),
    "timestamp"     timestamptz NOT NULL,  -- event time from the device
    heart_rate      smallint    NOT NULL CHECK (heart_rate BETWEEN 40 AND 180),
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    ingested_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT heart_rate_readings_provenance UNIQUE (kafka_topic, kafka_partition, kafka_offset)
);

-- Per-customer series ("customer X over the last hour") and per-customer time filters.
CREATE INDEX heart_rate_readings_customer_time ON heart_rate_readings (customer_id, "timestamp");
-- Dashboard time ranges across all customers (totals, distribution, latest readings).
CREATE INDEX heart_rate_readings_time ON heart_rate_readings ("timestamp");

CREATE TABLE rejected_readings (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    raw_value        text,         -- the message value verbatim; NULL if Kafka's value was null
                                   -- or not storable as text (not UTF-8, or holds a NUL byte)
    raw_value_base64 text,         -- the exact bytes, set only when raw_value cannot hold them
    reason           text        NOT NULL CHECK (reason IN (
                         'malformed_json', 'missing_field', 'invalid_type',
                         'invalid_timestamp', 'out_of_range')),
    detail           text        NOT NULL,
    kafka_topic      text        NOT NULL,
    kafka_partition  integer     NOT NULL,
    kafka_offset     bigint      NOT NULL,
    ingested_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rejected_readings_provenance UNIQUE (kafka_topic, kafka_partition, kafka_offset)
);

-- "Quarantined by reason" and "latest quarantined" both filter and sort on arrival time.
CREATE INDEX rejected_readings_ingested ON rejected_readings (ingested_at);

-- Landing zone for one micro-batch: Spark appends here over JDBC, then one transaction moves the
-- batch into the tables above with ON CONFLICT DO NOTHING and empties it. UNLOGGED: its rows are
-- transient, and a crash simply replays the batch from Kafka.
CREATE UNLOGGED TABLE stage_messages (
    sink_id          text        NOT NULL,  -- one per streaming job (checkpoint)
    batch_id         bigint      NOT NULL,
    kafka_topic      text        NOT NULL,
    kafka_partition  integer     NOT NULL,
    kafka_offset     bigint      NOT NULL,
    customer_id      text,
    "timestamp"      timestamptz,
    heart_rate       integer,
    reason           text,        -- NULL means valid
    detail           text,
    raw_value        text,
    raw_value_base64 text
);
CREATE INDEX stage_messages_batch ON stage_messages (sink_id, batch_id);

GRANT SELECT, INSERT ON heart_rate_readings, rejected_readings TO heartbeat_writer;
GRANT SELECT, INSERT, DELETE ON stage_messages TO heartbeat_writer;
REVOKE ALL ON stage_messages FROM heartbeat_readonly;
