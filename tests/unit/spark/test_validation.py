"""Every validation outcome, its order and its boundaries, on a real Spark session (no Kafka)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from chispa import assert_df_equality

from heartbeat_stream.transforms.validation import PARSED_COLUMNS
from tests.support.classify import BROKER_TIME, OnePass, outcomes, parse

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


# The cases of the tests that each classify one value; `classified` parses all of them in one
# pass per zone (tests/support/classify.py OnePass), each test then reads its own value's row.
BOUNDARIES = [(39, "out_of_range"), (40, None), (41, None), (179, None), (180, None),
              (181, "out_of_range"), (0, "out_of_range"), (-72, "out_of_range")]  # fmt: skip
MALFORMED = {
    "null-value": None, "broken": b"{broken", "array": b"[1, 2]", "number": b"42",
    "json-null": b"null", "string": b'"text"', "empty": b"", "not-utf8": b"\xff\xfe{}",
    "duplicate-key": b'{"customer_id": "C1", "customer_id": "C2"}',
}  # fmt: skip
MISSING = [
    b'{"timestamp": "2026-11-29T19:59:00Z", "heart_rate": 72}',
    b'{"customer_id": "C1", "heart_rate": 72}',
    b'{"customer_id": "C1", "timestamp": "2026-11-29T19:59:00Z"}',
    b'{"customer_id": null, "timestamp": "2026-11-29T19:59:00Z", "heart_rate": 72}',
    b'{"customer_id": "C1", "timestamp": "2026-11-29T19:59:00Z", "heart_rate": null}',
    b"{}",
]
INVALID_TYPE = {
    "string": reading(heart_rate="72"), "float": reading(heart_rate=72.5),
    "float-integral": reading(heart_rate=72.0), "boolean": reading(heart_rate=True),
    "array": reading(heart_rate=[72]), "object": reading(heart_rate={"bpm": 72}),
    "beyond-int64": reading(heart_rate=10**20), "empty-id": reading(customer_id=""),
    "id-65-chars": reading(customer_id="C" * 65), "id-with-nul": reading(customer_id="C\u0000001"),
    "array-id": reading(customer_id=["C1"]),
}  # fmt: skip
UNICODE_IDS = ["Zoë-Ørsted", "客户-42", "O'Brien", 'say "hi"', "emoji-❤️", "back\\slash", "ß" * 64]
WITH_OFFSETS = [
    ("2026-11-29T19:59:00Z", datetime(2026, 11, 29, 19, 59, tzinfo=UTC)),
    ("2026-11-29T19:59:00.123456Z", datetime(2026, 11, 29, 19, 59, 0, 123456, tzinfo=UTC)),
    ("2026-11-30T01:29:00+05:30", datetime(2026, 11, 29, 19, 59, tzinfo=UTC)),
    ("2026-11-29T14:59:00-05:00", datetime(2026, 11, 29, 19, 59, tzinfo=UTC)),
    ("2026-11-29T19:59:00+00:00", datetime(2026, 11, 29, 19, 59, tzinfo=UTC)),
    ("2026-11-29T20:04:59Z", datetime(2026, 11, 29, 20, 4, 59, tzinfo=UTC)),
]
INVALID_TIMESTAMPS = {
    "date-only": "2026-11-29", "epoch": "1764446340", "word": "yesterday",
    "feb-30": "2026-02-30T10:00:00Z", "hour-25": "2026-11-29T25:00:00Z",
    "basic-offset": "2026-11-29T19:59:00+0530", "6-min-ahead": "2026-11-29T20:05:01Z",
    "next-year": "2027-01-01T00:00:00Z", "empty-fraction": "2026-11-29T19:59:00.",
    "10-digit-fraction": "2026-11-29T19:59:00.1234567890", "lowercase-t": "2026-11-29t19:59:00Z",
    "space-before-z": "2026-11-29T19:59:00 Z", "naive-feb-30": "2026-02-30T10:00:00",
    "naive-6-min-ahead": "2026-11-29T20:05:01",
}  # fmt: skip
RATE_250 = b'{"customer_id": "C1", "timestamp": "2026-11-29T19:59:00Z", "heart_rate": 250}'
NOT_TEXT = {"not-utf8": b"\xff\xfe{}", "nul": b'{"a": "x\x00y"}'}
ORIGINAL_SYSTEM = (
    b'{"customer_id": 17, "timestamp": "2026-11-29T19:59:00.123456", "heart_rate": 75}'
)
INTEGER_IDS = [(17, "17"), (0, "0"), (-5, "-5"), (2**63 - 1, "9223372036854775807"),
               (-(2**63), "-9223372036854775808")]  # fmt: skip
OTHER_ID_SHAPES = {
    "2^63": ("9223372036854775808", "DECIMAL(19,0)"),
    "-2^63-1": ("-9223372036854775809", "DECIMAL(19,0)"),
    "2^64+17": ("18446744073709551633", "DECIMAL(20,0)"),
    "integral-float": ("17.0", "DECIMAL(2,0)"), "fraction": ("17.5", "DECIMAL(3,1)"),
    "exponent": ("1e3", "DOUBLE"), "boolean": ("true", "BOOLEAN"),
    "object": ('{"id": 17}', "OBJECT"), "empty": ('""', "0 characters"),
    "65-chars": (json.dumps("C" * 65), "65 characters"),
    "control-char": ('"C\\u00071"', "control characters"),
}  # fmt: skip


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


NAIVE_IN_ZONE = [
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
]


def shaped_id(customer_id: str) -> bytes:
    """A reading whose customer_id is the given JSON text, exactly as a device sends it."""
    return f'{{"customer_id": {customer_id}, "timestamp": "{TS}", "heart_rate": 72}}'.encode()


@pytest.fixture(scope="module")
def classified(spark) -> OnePass:
    in_utc = [
        *(reading(heart_rate=rate) for rate, _ in BOUNDARIES), *MALFORMED.values(), *MISSING,
        *INVALID_TYPE.values(), *(reading(customer_id=c) for c in UNICODE_IDS),
        *(reading(timestamp=t) for t, _ in WITH_OFFSETS),
        *(reading(timestamp=t) for t in INVALID_TIMESTAMPS.values()),
        *(reading(customer_id=c) for c, _ in INTEGER_IDS),
        *(shaped_id(c) for c, _ in OTHER_ID_SHAPES.values()), *NOT_TEXT.values(),
        reading(customer_id="C" * 64), reading(timestamp=1764446340),
        reading(device="watch", battery=0.5), RATE_250,
        reading(customer_id="C7", heart_rate=2**40), b'{"heart_rate": null}', ORIGINAL_SYSTEM,
    ]  # fmt: skip
    by_zone: dict[str, list[bytes | None]] = {"UTC": in_utc}
    for timestamp, zone, _ in NAIVE_IN_ZONE:
        by_zone.setdefault(zone, []).append(reading(timestamp=timestamp))
    by_zone.setdefault("Europe/Berlin", []).append(reading(timestamp="yesterday"))
    return OnePass(spark, by_zone)


@pytest.mark.parametrize(("heart_rate", "reason"), BOUNDARIES)
def test_heart_rate_boundaries(classified, heart_rate, reason):
    assert classified.reason(reading(heart_rate=heart_rate)) == reason


@pytest.mark.parametrize("value", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_json(classified, value):
    assert classified.reason(value) == "malformed_json"


@pytest.mark.parametrize("value", MISSING)
def test_missing_field(classified, value):
    assert classified.reason(value) == "missing_field"


def test_missing_field_detail_names_every_missing_field(classified):
    row = classified.row(b'{"heart_rate": null}')
    assert row.detail == "missing or null: customer_id, timestamp, heart_rate"


@pytest.mark.parametrize("value", list(INVALID_TYPE.values()), ids=list(INVALID_TYPE))
def test_invalid_type(classified, value):
    assert classified.reason(value) == "invalid_type"


def test_customer_id_of_64_characters_is_valid(classified):
    assert classified.reason(reading(customer_id="C" * 64)) is None


@pytest.mark.parametrize("customer_id", UNICODE_IDS)
def test_unicode_and_quotes_in_customer_id_survive(classified, customer_id):
    row = classified.row(reading(customer_id=customer_id))
    assert (row.reason, row.customer_id) == (None, customer_id)


@pytest.mark.parametrize(("timestamp", "expected_utc"), WITH_OFFSETS)
def test_timestamps_with_offsets_are_normalised_to_utc(classified, timestamp, expected_utc):
    row = classified.row(reading(timestamp=timestamp))
    assert row.reason is None
    assert row.timestamp.replace(tzinfo=UTC) == expected_utc


@pytest.mark.parametrize(
    "timestamp", list(INVALID_TIMESTAMPS.values()), ids=list(INVALID_TIMESTAMPS)
)
def test_invalid_timestamp(classified, timestamp):
    assert classified.reason(reading(timestamp=timestamp)) == "invalid_timestamp"


def test_numeric_timestamp_is_invalid_timestamp(classified):
    assert classified.reason(reading(timestamp=1764446340)) == "invalid_timestamp"


def test_checks_apply_in_order(spark):
    values = [
        b'{"heart_rate": "x"}',  # missing fields win over the wrong type
        reading(heart_rate="300", timestamp="bad"),  # type wins over timestamp and range
        reading(heart_rate=300, timestamp="bad"),  # timestamp wins over range
    ]
    assert outcomes(spark, values) == ["missing_field", "invalid_type", "invalid_timestamp"]


def test_extra_fields_are_ignored(classified):
    assert classified.reason(reading(device="watch", battery=0.5)) is None


def test_rejected_rows_keep_the_raw_value_verbatim(classified):
    row = classified.row(RATE_250)
    assert (row.reason, row.raw_value, row.raw_value_base64) == (
        "out_of_range",
        RATE_250.decode(),
        None,
    )
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


def test_an_out_of_range_rate_beyond_an_int_is_kept_as_null(classified):
    row = classified.row(reading(customer_id="C7", heart_rate=2**40))
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


@pytest.mark.parametrize("raw", list(NOT_TEXT.values()), ids=list(NOT_TEXT))
def test_values_postgres_text_cannot_hold_are_kept_as_base64(classified, raw):
    row = classified.row(raw)
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


@pytest.mark.parametrize(("customer_id", "stored"), INTEGER_IDS)
def test_integer_customer_ids_are_stored_as_decimal_text(classified, customer_id, stored):
    row = classified.row(reading(customer_id=customer_id))
    assert (row.reason, row.customer_id) == (None, stored)


@pytest.mark.parametrize(
    ("customer_id", "got"), list(OTHER_ID_SHAPES.values()), ids=list(OTHER_ID_SHAPES)
)
def test_other_customer_id_shapes_are_invalid_type_with_the_accepted_shapes(
    classified, customer_id, got
):
    """`customer_id` is the id's JSON text, so numbers arrive exactly as a device sends them."""
    row = classified.row(shaped_id(customer_id))
    assert row.reason == "invalid_type"
    assert row.detail == (
        "customer_id must be a string of 1-64 characters without control characters, "
        f"or a JSON integer within 64 bits; got {got}"
    )


@pytest.mark.parametrize(("timestamp", "zone", "expected"), NAIVE_IN_ZONE)
def test_timestamps_without_offset_are_read_in_the_configured_zone(
    classified, timestamp, zone, expected
):
    row = classified.row(reading(timestamp=timestamp), naive_zone=zone)
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


def test_unreadable_timestamp_detail_names_the_accepted_shapes(classified):
    row = classified.row(reading(timestamp="yesterday"), naive_zone="Europe/Berlin")
    assert row.detail == (
        "timestamp must be ISO-8601 date and time with Z or an offset, as in "
        "2026-11-29T20:16:58.123Z or 2026-11-29 21:16:58+01:00, or without an offset "
        "(read as Europe/Berlin time)"
    )


def test_the_original_systems_messages_are_accepted(classified):
    row = classified.row(ORIGINAL_SYSTEM)
    assert (row.reason, row.customer_id, row.heart_rate) == (None, "17", 75)
    assert row.timestamp.replace(tzinfo=UTC) == utc(2026, 11, 29, 19, 59, 0, 123456)
