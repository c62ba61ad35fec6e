"""Parse and validate Kafka messages: pure DataFrame-to-DataFrame functions, no I/O.

Each message gets exactly one outcome, decided in this order (first failing check wins):
malformed_json, missing_field, invalid_type, invalid_timestamp, out_of_range, else valid.
The accepted shapes are stated in heartbeat_contract.

An out_of_range message keeps its customer, event time and heart rate beside its reason: it is
quarantined like every rejected message, and the critical alert rule reads those fields.
Every message carries the broker's timestamp (`kafka_timestamp`): when it reached Kafka.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from heartbeat_contract import (
    CUSTOMER_ID,
    HEART_RATE,
    INVALID_TIMESTAMP,
    INVALID_TYPE,
    MALFORMED_JSON,
    MAX_CLOCK_SKEW_SECONDS,
    MAX_CUSTOMER_ID_LENGTH,
    MAX_VALID_BPM,
    MIN_VALID_BPM,
    MISSING_FIELD,
    OUT_OF_RANGE,
    REJECT_NAIVE_TIMESTAMPS,
    REQUIRED_FIELDS,
    TIMESTAMP,
)

# ISO-8601 extended format: `T` or a space, seconds and 0-9 fraction digits optional; then the
# offset, which ISO_8601_NAIVE leaves out.
_ISO_8601_LOCAL = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?"
ISO_8601_WITH_OFFSET = _ISO_8601_LOCAL + r"(Z|[+-]\d{2}:\d{2})$"
ISO_8601_NAIVE = _ISO_8601_LOCAL + "$"
# Integer types a JSON number without fraction or exponent parses to (as a Spark VARIANT).
_JSON_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INT", "BIGINT")


def _timestamp_shapes(naive_zone: str) -> str:
    """The detail of an unreadable timestamp: which shapes are accepted."""
    accepted = (
        "timestamp must be ISO-8601 date and time with Z or an offset, as in "
        "2026-11-29T20:16:58.123Z or 2026-11-29 21:16:58+01:00"
    )
    if naive_zone == REJECT_NAIVE_TIMESTAMPS:
        return f"{accepted} (timestamps without an offset are rejected here)"
    return f"{accepted}, or without an offset (read as {naive_zone} time)"


# Control characters cannot be stored in PostgreSQL text (NUL) or shown sanely in a dashboard.
_CONTROL_CHARACTERS = r"[\x00-\x1f\x7f]"

# The column parse_messages reads "now" from (for the future-timestamp check).
PROCESSING_TIME = "processing_time"

PARSED_COLUMNS = (
    "kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp",
    "customer_id", "timestamp", "heart_rate",
    "reason", "detail", "raw_value", "raw_value_base64",
)  # fmt: skip


def _type_of(variant: Column) -> Column:
    """The VARIANT's type name (BIGINT, STRING, OBJECT<...>, VOID for JSON null), or NULL."""
    return F.schema_of_variant(variant)


def with_processing_time(kafka_rows: DataFrame) -> DataFrame:
    """The rows with the micro-batch's processing time as the PROCESSING_TIME column.

    Why a column from a one-row broadcast and not current_timestamp() in the classifier: in a
    stream, current_timestamp() becomes a new literal every micro-batch, compiled into the
    stage's generated Java, so each batch ran freshly compiled, cold code. Here the optimizer
    evaluates the literal over a one-row local relation (never compiled) and the stage reads
    the value from the broadcast. A replayed batch gets the same time: Spark logs it with the
    batch's offsets.
    """
    batch_time = kafka_rows.sparkSession.sql(
        f"SELECT current_timestamp() AS {PROCESSING_TIME} FROM VALUES (0) AS one_row(n)"
    )
    return kafka_rows.crossJoin(F.broadcast(batch_time))


def parse_messages(kafka_rows: DataFrame, naive_zone: str = "UTC") -> DataFrame:
    """Kafka source rows -> one row per message with its fields, outcome and provenance.

    `kafka_rows` has the Kafka source's columns topic, partition, offset, timestamp and value,
    and PROCESSING_TIME: the job's with_processing_time adds it; tests give a fixed instant.
    `naive_zone` is the IANA zone a timestamp without offset is read in, or "reject". The
    session time zone must be UTC (the job sets it): Spark reads the wall-clock in it first.
    Valid rows have reason NULL. Rejected rows keep the raw value for the quarantine table;
    out_of_range rows also keep customer_id, timestamp and heart_rate (critical readings).
    """
    text = F.col("value").cast("string")
    storable_text = F.is_valid_utf8(text) & ~F.instr(text, "\u0000").cast("boolean")
    frame = kafka_rows.select(
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col(PROCESSING_TIME).alias("_now"),
        F.col("value").alias("_value"),
        text.alias("_text"),
        F.is_valid_utf8(text).alias("_utf8"),
        storable_text.alias("_storable"),
    )
    # Valid JSON whose first character (after JSON whitespace) opens an object is an object;
    # cheaper per row than asking the parsed value for its schema.
    frame = frame.withColumn(
        "_v", F.when(F.col("_utf8"), F.try_parse_json(F.col("_text")))
    ).withColumn(
        "_is_object",
        F.col("_v").isNotNull() & F.ltrim(F.col("_text"), F.lit(" \t\n\r")).startswith("{"),
    )

    fields = {name: F.variant_get(F.col("_v"), f"$.{name}", "variant") for name in REQUIRED_FIELDS}
    types = {name: _type_of(column) for name, column in fields.items()}
    frame = frame.select(
        "*",
        *(types[name].alias(f"_{name}_type") for name in REQUIRED_FIELDS),
        # A JSON integer id becomes its decimal text: 17 -> "17".
        F.try_variant_get(F.col("_v"), f"$.{CUSTOMER_ID}", "string").alias("_customer_id"),
        F.try_variant_get(F.col("_v"), f"$.{TIMESTAMP}", "string").alias("_timestamp_text"),
        F.try_variant_get(F.col("_v"), f"$.{HEART_RATE}", "bigint").alias("_heart_rate"),
    ).withColumn("_timestamp", _event_time(F.col("_timestamp_text"), naive_zone))
    first_failed, reason, detail = _outcome(F.col("_now"), naive_zone)
    frame = frame.withColumn("_rule", first_failed).withColumns(
        {"reason": reason, "detail": detail}
    )
    kept = F.col("reason").isNull() | (F.col("reason") == OUT_OF_RANGE)
    return frame.select(
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
        F.when(kept, F.col("_customer_id")).alias("customer_id"),
        F.when(kept, F.col("_timestamp")).alias("timestamp"),
        # NULL when an out-of-range rate does not fit an int (no critical reading anyway)
        F.when(kept, F.col("_heart_rate").try_cast("int")).alias("heart_rate"),
        "reason",
        "detail",
        F.when(F.col("reason").isNotNull() & F.col("_storable"), F.col("_text")).alias("raw_value"),
        F.when(
            F.col("reason").isNotNull() & F.col("_value").isNotNull() & ~F.col("_storable"),
            F.base64(F.col("_value")),
        ).alias("raw_value_base64"),
    )


def _event_time(text: Column, naive_zone: str) -> Column:
    """The instant a timestamp text names, or NULL when its shape is not accepted."""
    with_offset = F.when(text.rlike(ISO_8601_WITH_OFFSET), F.try_to_timestamp(text))
    if naive_zone == REJECT_NAIVE_TIMESTAMPS:
        return with_offset
    # Parsed as UTC wall-clock (the session zone), then moved from `naive_zone` to UTC.
    naive = F.to_utc_timestamp(F.try_to_timestamp(text), naive_zone)
    return F.coalesce(with_offset, F.when(text.rlike(ISO_8601_NAIVE), naive))


def _missing_fields() -> Column:
    """Comma-separated names of required fields that are absent or JSON null."""
    missing = [
        F.when(F.col(f"_{name}_type").isNull() | (F.col(f"_{name}_type") == "VOID"), F.lit(name))
        for name in REQUIRED_FIELDS
    ]
    return F.concat_ws(", ", *missing)


def _outcome(now: Column, naive_zone: str) -> tuple[Column, Column, Column]:
    """The index of the first failing rule (the `_rule` column), and reason and detail from it:
    the rules in the documented order."""
    hr_type = F.col(f"_{HEART_RATE}_type")
    cid_type = F.col(f"_{CUSTOMER_ID}_type")
    customer_id = F.col("_customer_id")
    heart_rate = F.col("_heart_rate")
    missing = _missing_fields()

    rules: list[tuple[Column, str, Column]] = [
        (F.col("_value").isNull(), MALFORMED_JSON, F.lit("value is null")),
        (~F.col("_utf8"), MALFORMED_JSON, F.lit("value is not valid UTF-8")),
        (F.col("_v").isNull(), MALFORMED_JSON, F.lit("value is not valid JSON")),
        (
            ~F.col("_is_object"),
            MALFORMED_JSON,
            F.concat(
                F.lit("value is JSON "),
                F.split(_type_of(F.col("_v")), "<")[0],
                F.lit(", not an object"),
            ),
        ),
        (missing != "", MISSING_FIELD, F.concat(F.lit("missing or null: "), missing)),
        (
            ~hr_type.isin(*_JSON_INTEGER_TYPES) | heart_rate.isNull(),
            INVALID_TYPE,
            F.concat(F.lit("heart_rate must be a JSON integer, got "), hr_type),
        ),
        (
            ~cid_type.isin("STRING", *_JSON_INTEGER_TYPES)
            | (F.char_length(customer_id) < 1)
            | (F.char_length(customer_id) > MAX_CUSTOMER_ID_LENGTH)
            | customer_id.rlike(_CONTROL_CHARACTERS),
            INVALID_TYPE,
            F.concat(
                F.lit(
                    f"customer_id must be a string of 1-{MAX_CUSTOMER_ID_LENGTH} characters "
                    "without control characters, or a JSON integer within 64 bits; got "
                ),
                F.when(cid_type != "STRING", F.split(cid_type, "<")[0])
                .when(customer_id.rlike(_CONTROL_CHARACTERS), F.lit("control characters"))
                .otherwise(
                    F.concat(F.char_length(customer_id).cast("string"), F.lit(" characters"))
                ),
            ),
        ),
        (
            F.col("_timestamp").isNull(),
            INVALID_TIMESTAMP,
            F.lit(_timestamp_shapes(naive_zone)),
        ),
        (
            F.col("_timestamp") > now + F.expr(f"INTERVAL {MAX_CLOCK_SKEW_SECONDS} SECONDS"),
            INVALID_TIMESTAMP,
            F.lit(f"timestamp is more than {MAX_CLOCK_SKEW_SECONDS} s ahead of processing time"),
        ),
        (
            (heart_rate < MIN_VALID_BPM) | (heart_rate > MAX_VALID_BPM),
            OUT_OF_RANGE,
            F.concat(
                F.lit("heart_rate "),
                heart_rate.cast("string"),
                F.lit(f" is outside {MIN_VALID_BPM}..{MAX_VALID_BPM}"),
            ),
        ),
    ]
    # The first rule that holds decides; each condition is evaluated once per message.
    first_failed = F.coalesce(
        *(F.when(condition, F.lit(i)) for i, (condition, _, _) in enumerate(rules))
    )
    reason = F.when(
        F.col("_rule").isNotNull(),
        F.element_at(F.array(*(F.lit(code) for _, code, _ in rules)), F.col("_rule") + 1),
    )
    detail = F.coalesce(
        *(F.when(F.col("_rule") == i, text) for i, (_, _, text) in enumerate(rules))
    )
    return first_failed, reason, detail
