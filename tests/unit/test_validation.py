"""Every validation outcome, its order and its boundaries, on a real Spark session (no Kafka)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from chispa import assert_df_equality

from heartbeat_stream.transforms.validation import PARSED_COLUMNS
from tests.support.classify import BROKER_TIME, outcomes, parse

pytestmark = pytest.mark.unit

TS = "2026-11-29T19:59:00.000Z"


def reading(customer_id="C0001", timestamp=TS, heart_rate=72, **extra) -> bytes:
    body = {"customer_id": customer_id, "timestamp": timestamp, "heart_rate": heart_rate}
    return json.dumps({**body, **extra}).encode()


def test_valid_reading_is_parsed_exactly(spark):
    actual = parse(spark, [reading()])
    expected = spark.createDataFrame(
        [("t", 0, 0, BROKER_TIME, "C0001", datetime(2026, 11, 29, 19, 59, tzinfo=UTC), 72,
          None, None, None, None)],
        "kafka_topic string, kafka_partition int, kafka_offset long, kafka_timestamp timestamp, "
        "customer_id string, "
        "timestamp timestamp, heart_rate int, reason string, detail string, "
        "raw_value string, raw_value_base64 string",
    )  # fmt: skip
    assert tuple(actual.columns) == PARSED_COLUMNS
    assert_df_equality(actual, expected, ignore_nullable=True)


@pytest.mark.parametrize(
    ("heart_rate", "reason"),
    [(39, "out_of_range"), (40, None), (41, None), (179, None), (180, None),
     (181, "out_of_range"), (0, "out_of_range"), (-72, "out_of_range")],
)  # fmt: skip
def test_heart_rate_boundaries(spark, heart_rate, reason):
    assert outcomes(spark, [reading(heart_rate=heart_rate)]) == [reason]


@pytest.mark.parametrize(
    "value",
    [None, b"{broken", b"[1, 2]", b"42", b"null", b'"text"', b"", b"\xff\xfe{}",
     b'{"customer_id": "C1", "customer_id": "C2"}'],
    ids=["null-value", "broken", "array", "number", "json-null", "string", "empty", "not-utf8",
         "duplicate-key"],
)  # fmt: skip
def test_malformed_json(spark, value):
    assert outcomes(spark, [value]) == ["malformed_json"]


@pytest.mark.parametrize(
    "value",
    [
        b'{"timestamp": "2026-11-29T19:59:00Z", "heart_rate": 72}',
        b'{"customer_id": "C1", "heart_rate": 72}',
        b'{"customer_id": "C1", "timestamp": "2026-11-29T19:59:00Z"}',
        b'{"customer_id": null, "timestamp": "2026-11-29T19:59:00Z", "heart_rate": 72}',
        b'{"customer_id": "C1", "timestamp": "2026-11-29T19:59:00Z", "heart_rate": null}',
        b"{}",
    ],
)
def test_missing_field(spark, value):
    assert outcomes(spark, [value]) == ["missing_field"]


def test_missing_field_detail_names_every_missing_field(spark):
    (row,) = parse(spark, [b'{"heart_rate": null}']).collect()
    assert row.detail == "missing or null: customer_id, timestamp, heart_rate"


@pytest.mark.parametrize(
    "value",
    [
        reading(heart_rate="72"),
        reading(heart_rate=72.5),
        reading(heart_rate=72.0),
        reading(heart_rate=True),
        reading(heart_rate=[72]),
        reading(heart_rate={"bpm": 72}),
        reading(heart_rate=10**20),
        reading(customer_id=""),
        reading(customer_id="C" * 65),
        reading(customer_id="C\u0000001"),
        reading(customer_id=["C1"]),
    ],
    ids=["string", "float", "float-integral", "boolean", "array", "object", "beyond-int64",
         "empty-id", "id-65-chars", "id-with-nul", "array-id"],
)  # fmt: skip
def test_invalid_type(spark, value):
    assert outcomes(spark, [value]) == ["invalid_type"]


def test_customer_id_of_64_characters_is_valid(spark):
    assert outcomes(spark, [reading(customer_id="C" * 64)]) == [None]


@pytest.mark.parametrize(
    "customer_id",
    ["Zoë-Ørsted", "客户-42", "O'Brien", 'say "hi"', "emoji-❤️", "back\\slash", "ß" * 64],
)
def test_unicode_and_quotes_in_customer_id_survive(spark, customer_id):
    (row,) = parse(spark, [reading(customer_id=customer_id)]).collect()
    assert (row.reason, row.customer_id) == (None, customer_id)


@pytest.mark.parametrize(
    ("timestamp", "expected_utc"),
    [
        ("2026-11-29T19:59:00Z", datetime(2026, 11, 29, 19, 59, tzinfo=UTC)),
        ("2026-11-29T19:59:00.123456Z", datetime(2026, 11, 29, 19, 59, 0, 123456, tzinfo=UTC)),
        ("2026-11-30T01:29:00+05:30", datetime(2026, 11, 29, 19, 59, tzinfo=UTC)),
        ("2026-11-29T14:59:00-05:00", datetime(2026, 11, 29, 19, 59, tzinfo=UTC)),
        ("2026-11-29T19:59:00+00:00", datetime(2026, 11, 29, 19, 59, tzinfo=UTC)),
        ("2026-11-29T20:04:59Z", datetime(2026, 11, 29, 20, 4, 59, tzinfo=UTC)),
    ],
)
def test_timestamps_with_offsets_are_normalised_to_utc(spark, timestamp, expected_utc):
    (row,) = parse(spark, [reading(timestamp=timestamp)]).collect()
    assert row.reason is None
    assert row.timestamp.replace(tzinfo=UTC) == expected_utc


@pytest.mark.parametrize(
    "timestamp",
    ["2026-11-29", "1764446340", "yesterday", "2026-02-30T10:00:00Z", "2026-11-29T25:00:00Z",
     "2026-11-29T19:59:00+0530", "2026-11-29T20:05:01Z", "2027-01-01T00:00:00Z",
     "2026-11-29T19:59:00.", "2026-11-29T19:59:00.1234567890", "2026-11-29t19:59:00Z",
     "2026-11-29T19:59:00 Z", "2026-02-30T10:00:00", "2026-11-29T20:05:01"],
    ids=["date-only", "epoch", "word", "feb-30", "hour-25", "basic-offset", "6-min-ahead",
         "next-year", "empty-fraction", "10-digit-fraction", "lowercase-t", "space-before-z",
         "naive-feb-30", "naive-6-min-ahead"],
)  # fmt: skip
def test_invalid_timestamp(spark, timestamp):
    assert outcomes(spark, [reading(timestamp=timestamp)]) == ["invalid_timestamp"]


def test_numeric_timestamp_is_invalid_timestamp(spark):
    assert outcomes(spark, [reading(timestamp=1764446340)]) == ["invalid_timestamp"]


def test_checks_apply_in_order(spark):
    values = [
        b'{"heart_rate": "x"}',  # missing fields win over the wrong type
        reading(heart_rate="300", timestamp="bad"),  # type wins over timestamp and range
        reading(heart_rate=300, timestamp="bad"),  # timestamp wins over range
    ]
    assert outcomes(spark, values) == ["missing_field", "invalid_type", "invalid_timestamp"]


def test_extra_fields_are_ignored(spark):
    assert outcomes(spark, [reading(device="watch", battery=0.5)]) == [None]


def test_rejected_rows_keep_the_raw_value_verbatim(spark):
    raw = b'{"customer_id": "C1", "timestamp": "2026-11-29T19:59:00Z", "heart_rate": 250}'
    (row,) = parse(spark, [raw]).collect()
    assert (row.reason, row.raw_value, row.raw_value_base64) == ("out_of_range", raw.decode(), None)
    assert row.detail == "heart_rate 250 is outside 40..180"


def test_out_of_range_rows_keep_their_reading_for_the_critical_rule(spark):
    actual = parse(spark, [reading(customer_id="C7", heart_rate=35)])
    expected = spark.createDataFrame(
        [("t", 0, 0, BROKER_TIME, "C7", datetime(2026, 11, 29, 19, 59, tzinfo=UTC), 35,
          "out_of_range", "heart_rate 35 is outside 40..180",
          reading(customer_id="C7", heart_rate=35).decode(), None)],
        "kafka_topic string, kafka_partition int, kafka_offset long, kafka_timestamp timestamp, "
        "customer_id string, timestamp timestamp, heart_rate int, reason string, detail string, "
        "raw_value string, raw_value_base64 string",
    )  # fmt: skip
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_an_out_of_range_rate_beyond_an_int_is_kept_as_null(spark):
    (row,) = parse(spark, [reading(customer_id="C7", heart_rate=2**40)]).collect()
    assert (row.reason, row.customer_id, row.heart_rate) == ("out_of_range", "C7", None)


def test_other_rejected_rows_keep_no_reading_fields(spark):
    values = [reading(heart_rate="72"), reading(timestamp="bad", heart_rate=300), b"{"]
    rows = parse(spark, values).collect()
    assert [row.reason for row in rows] == ["invalid_type", "invalid_timestamp", "malformed_json"]
    assert {(row.customer_id, row.timestamp, row.heart_rate) for row in rows} == {
        (None, None, None)
    }


def test_every_row_carries_the_broker_timestamp(spark):
    rows = parse(spark, [reading(), reading(heart_rate=300), None]).collect()
    assert [row.kafka_timestamp.replace(tzinfo=UTC) for row in rows] == [BROKER_TIME] * 3


@pytest.mark.parametrize("raw", [b"\xff\xfe{}", b'{"a": "x\x00y"}'], ids=["not-utf8", "nul"])
def test_values_postgres_text_cannot_hold_are_kept_as_base64(spark, raw):
    (row,) = parse(spark, [raw]).collect()
    assert row.raw_value is None
    assert base64.b64decode(row.raw_value_base64) == raw


def test_every_message_gets_exactly_one_outcome(spark):
    values = [reading(heart_rate=h) for h in range(30, 200)] + [None, b"{", b"{}"]
    frame = parse(spark, values)
    assert frame.count() == len(values)
    valid = frame.filter("reason IS NULL")
    assert (
        valid.filter("customer_id IS NULL OR timestamp IS NULL OR heart_rate IS NULL").count() == 0
    )
    assert frame.filter("reason IS NOT NULL AND detail IS NULL").count() == 0


# --- The original system's devices: integer customer ids, timestamps without an offset ---------


@pytest.mark.parametrize(
    ("customer_id", "stored"),
    [(17, "17"), (0, "0"), (-5, "-5"), (2**63 - 1, "9223372036854775807"),
     (-(2**63), "-9223372036854775808")],
)  # fmt: skip
def test_integer_customer_ids_are_stored_as_decimal_text(spark, customer_id, stored):
    (row,) = parse(spark, [reading(customer_id=customer_id)]).collect()
    assert (row.reason, row.customer_id) == (None, stored)


@pytest.mark.parametrize(
    ("customer_id", "got"),
    [("9223372036854775808", "DECIMAL(19,0)"), ("-9223372036854775809", "DECIMAL(19,0)"),
     ("18446744073709551633", "DECIMAL(20,0)"), ("17.0", "DECIMAL(2,0)"),
     ("17.5", "DECIMAL(3,1)"), ("1e3", "DOUBLE"), ("true", "BOOLEAN"), ('{"id": 17}', "OBJECT"),
     ('""', "0 characters"), (json.dumps("C" * 65), "65 characters"),
     ('"C\\u00071"', "control characters")],
    ids=["2^63", "-2^63-1", "2^64+17", "integral-float", "fraction", "exponent", "boolean",
         "object", "empty", "65-chars", "control-char"],
)  # fmt: skip
def test_other_customer_id_shapes_are_invalid_type_with_the_accepted_shapes(
    spark, customer_id, got
):
    """`customer_id` is the id's JSON text, so numbers arrive exactly as a device sends them."""
    value = f'{{"customer_id": {customer_id}, "timestamp": "{TS}", "heart_rate": 72}}'
    (row,) = parse(spark, [value.encode()]).collect()
    assert row.reason == "invalid_type"
    assert row.detail == (
        "customer_id must be a string of 1-64 characters without control characters, "
        f"or a JSON integer within 64 bits; got {got}"
    )


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timestamp", "zone", "expected"),
    [
        ("2026-11-29T19:59:00", "UTC", utc(2026, 11, 29, 19, 59)),
        ("2026-11-29 19:59:00", "UTC", utc(2026, 11, 29, 19, 59)),
        ("2026-11-29T19:59", "UTC", utc(2026, 11, 29, 19, 59)),
        ("2026-11-29T19:59:00.1", "UTC", utc(2026, 11, 29, 19, 59, 0, 100000)),
        ("2026-11-29 19:59:00.123456", "UTC", utc(2026, 11, 29, 19, 59, 0, 123456)),
        # nanoseconds are kept to the microsecond, as PostgreSQL stores them
        ("2026-11-29T19:59:00.123456789", "UTC", utc(2026, 11, 29, 19, 59, 0, 123456)),
        ("2026-11-29T20:59:00", "Europe/Berlin", utc(2026, 11, 29, 19, 59)),
        ("2026-07-01 12:00:00.5", "America/New_York", utc(2026, 7, 1, 16, 0, 0, 500000)),
        # the hour that does not exist when clocks go forward is read as the hour after it
        ("2026-03-29T02:30:00", "Europe/Berlin", utc(2026, 3, 29, 1, 30)),
        # the hour that happens twice when clocks go back is read as its first occurrence
        ("2026-10-25T02:30:00", "Europe/Berlin", utc(2026, 10, 25, 0, 30)),
        ("2026-10-25T03:30:00", "Europe/Berlin", utc(2026, 10, 25, 2, 30)),
        # an explicit offset always wins over the configured zone
        ("2026-11-29T19:59:00Z", "Europe/Berlin", utc(2026, 11, 29, 19, 59)),
        ("2026-11-29 21:59:00+02:00", "America/New_York", utc(2026, 11, 29, 19, 59)),
    ],
)
def test_timestamps_without_offset_are_read_in_the_configured_zone(
    spark, timestamp, zone, expected
):
    (row,) = parse(spark, [reading(timestamp=timestamp)], naive_zone=zone).collect()
    assert row.reason is None, row.detail
    assert row.timestamp.replace(tzinfo=UTC) == expected


def test_the_future_limit_applies_after_the_conversion(spark):
    values = [
        reading(timestamp="2026-11-30T05:04:00"),  # Tokyo: 20:04 UTC, 4 min ahead
        reading(timestamp="2026-11-30T05:06:00"),  # Tokyo: 20:06 UTC, 6 min ahead
    ]
    assert outcomes(spark, values, naive_zone="Asia/Tokyo") == [None, "invalid_timestamp"]
    west = [reading(timestamp="2026-11-29T15:06:00")]  # 15:06 in UTC, 20:06 in New York
    assert outcomes(spark, west, naive_zone="UTC") == [None]
    assert outcomes(spark, west, naive_zone="America/New_York") == ["invalid_timestamp"]


def test_reject_setting_quarantines_timestamps_without_offset(spark):
    values = [reading(timestamp="2026-11-29T19:59:00"), reading(timestamp="2026-11-29T19:59:00Z")]
    rows = parse(spark, values, naive_zone="reject").orderBy("kafka_offset").collect()
    assert [row.reason for row in rows] == ["invalid_timestamp", None]
    assert rows[0].detail.endswith("(timestamps without an offset are rejected here)")


def test_unreadable_timestamp_detail_names_the_accepted_shapes(spark):
    (row,) = parse(spark, [reading(timestamp="yesterday")], naive_zone="Europe/Berlin").collect()
    assert row.detail == (
        "timestamp must be ISO-8601 date and time with Z or an offset, as in "
        "2026-11-29T20:16:58.123Z or 2026-11-29 21:16:58+01:00, or without an offset "
        "(read as Europe/Berlin time)"
    )


def test_the_original_systems_messages_are_accepted(spark):
    value = b'{"customer_id": 17, "timestamp": "2026-11-29T19:59:00.123456", "heart_rate": 75}'
    (row,) = parse(spark, [value]).collect()
    assert (row.reason, row.customer_id, row.heart_rate) == (None, "17", 75)
    assert row.timestamp.replace(tzinfo=UTC) == utc(2026, 11, 29, 19, 59, 0, 123456)
