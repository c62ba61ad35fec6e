"""Parse and validate Kafka messages: pure DataFrame-to-DataFrame functions, no I/O.

Each message gets exactly one outcome, decided in this order (first failing check wins):
malformed_json, missing_field, invalid_type, invalid_timestamp, out_of_range, else valid.
The accepted shapes are stated in heartbeat_contract.

An out_of_range message keeps its customer, event time and heart rate beside its reason: it is
quarantined like every rejected message, and the critical alert rule reads those fields.
Every message carries the broker's timestamp (`kafka_timestamp`): when it reached Kafka.

Two ways to read a message's fields, one outcome. Nearly every message has the producer's shape:
a flat object with exactly the three fields in the contract's order, an id and a timestamp that
are plain strings (no escape) or an integer id, and an integer heart rate. One anchored pattern
(FAST_SHAPE) proves that shape and reads the fields: the classifier runs about 1.5 times as fast
as when every message is parsed as a VARIANT (the JVM must be allowed to compile huge methods:
spark-jobs/submit.sh). Whatever the pattern does not prove (escapes, other key orders, extra
fields, floats, duplicate keys, broken JSON) is read as a VARIANT, as every message once was.
tests/unit/spark/test_fast_path.py checks that both give identical rows over every test corpus.
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

# The common shape, as a Java pattern over the whole text (\A and \z: Java's `$` would also
# match before a final line break). A string without `"`, `\` or a control character is its own
# JSON text, so the captured characters are the value. Group 1: the id, a string with its
# quotes or an integer (no `-0`, at most 18 digits: its decimal text is the JSON text); group 2:
# the timestamp; group 3: the heart rate, at most 9 digits (an int). Group 3 is never empty when
# the pattern matches, so it is what tells a match.
_WS = r"[ \t\n\r]*"
_PLAIN_CHARACTERS = r'[^"\\\x00-\x1f]*'
_INTEGER_ID = r"0|-?[1-9][0-9]{0,17}"
FAST_SHAPE = (
    rf"\A{_WS}\{{{_WS}"
    rf'"{CUSTOMER_ID}"{_WS}:{_WS}("{_PLAIN_CHARACTERS}"|{_INTEGER_ID}){_WS},{_WS}'
    rf'"{TIMESTAMP}"{_WS}:{_WS}"({_PLAIN_CHARACTERS})"{_WS},{_WS}'
    rf'"{HEART_RATE}"{_WS}:{_WS}(0|-?[1-9][0-9]{{0,8}}){_WS}\}}{_WS}\z'
)


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


def parse_messages(
    kafka_rows: DataFrame, naive_zone: str = "UTC", *, fast_path: bool = True
) -> DataFrame:
    """Kafka source rows -> one row per message with its fields, outcome and provenance.

    `kafka_rows` has the Kafka source's columns topic, partition, offset, timestamp and value,
    and PROCESSING_TIME: the job's with_processing_time adds it; tests give a fixed instant.
    `naive_zone` is the IANA zone a timestamp without offset is read in, or "reject". The
    session time zone must be UTC (the job sets it): Spark reads the wall-clock in it first.
    Valid rows have reason NULL. Rejected rows keep the raw value for the quarantine table;
    out_of_range rows also keep customer_id, timestamp and heart_rate (critical readings).
    `fast_path=False` reads every message as a VARIANT: the reference the fast path is tested
    against.
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
    frame = _read_fields(frame, fast_path).withColumn(
        "_timestamp", _event_time(F.col("_timestamp_text"), naive_zone)
    )
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


def _read_fields(frame: DataFrame, fast_path: bool) -> DataFrame:
    """Adds what the rules read: `_json` (the text is JSON), `_is_object`, each field's type
    name and value; from FAST_SHAPE's groups where it matches, else from the VARIANT `_v`
    (parsed only for those messages)."""
    if fast_path:
        groups = (
            F.regexp_extract(F.col("_text"), FAST_SHAPE, g).alias(f"_shape{g}") for g in (1, 2, 3)
        )
        frame = frame.select("*", *groups)
        fast = F.col("_utf8") & (F.col("_shape3") != "")
    else:
        fast = F.lit(False)
    frame = frame.withColumn("_fast", fast).withColumn(
        "_v", F.when(F.col("_utf8") & ~F.col("_fast"), F.try_parse_json(F.col("_text")))
    )
    fast, parsed = F.col("_fast"), F.col("_v").isNotNull()
    # Valid JSON whose first character (after JSON whitespace) opens an object is an object;
    # cheaper per row than asking the parsed value for its schema.
    opens_object = F.ltrim(F.col("_text"), F.lit(" \t\n\r")).startswith("{")
    fields = _variant_fields()
    if fast_path:
        fields = {name: F.when(fast, column).otherwise(fields[name])
                  for name, column in _fast_fields().items()}  # fmt: skip
    return frame.select(
        "*",
        (fast | parsed).alias("_json"),
        (fast | (parsed & opens_object)).alias("_is_object"),
        *(column.alias(name) for name, column in fields.items()),
    )


def _variant_fields() -> dict[str, Column]:
    """Each field's type name (`_<field>_type`) and value, read from the VARIANT `_v`."""
    types = {
        f"_{name}_type": _type_of(F.variant_get(F.col("_v"), f"$.{name}", "variant"))
        for name in REQUIRED_FIELDS
    }
    return {
        **types,
        # A JSON integer id becomes its decimal text: 17 -> "17".
        "_customer_id": F.try_variant_get(F.col("_v"), f"$.{CUSTOMER_ID}", "string"),
        "_timestamp_text": F.try_variant_get(F.col("_v"), f"$.{TIMESTAMP}", "string"),
        "_heart_rate": F.try_variant_get(F.col("_v"), f"$.{HEART_RATE}", "bigint"),
    }


def _fast_fields() -> dict[str, Column]:
    """The same from FAST_SHAPE's groups (`_shape1..3`), as the VARIANT would give them."""
    quoted = F.col("_shape1").startswith('"')
    return {
        f"_{CUSTOMER_ID}_type": F.when(quoted, F.lit("STRING")).otherwise(F.lit("BIGINT")),
        f"_{TIMESTAMP}_type": F.lit("STRING"),
        f"_{HEART_RATE}_type": F.lit("INT"),
        "_customer_id": F.when(
            quoted, F.expr("substring(_shape1, 2, char_length(_shape1) - 2)")
        ).otherwise(F.col("_shape1")),
        "_timestamp_text": F.col("_shape2"),
        "_heart_rate": F.col("_shape3").cast("bigint"),
    }


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
        (~F.col("_json"), MALFORMED_JSON, F.lit("value is not valid JSON")),
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
