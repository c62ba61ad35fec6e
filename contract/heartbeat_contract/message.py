"""The message contract between the producer and the streaming job, kept in one place.

Value: a UTF-8 JSON object
    {"customer_id": "C0042", "timestamp": "2026-11-29T20:16:58.123Z", "heart_rate": 72}
- customer_id: a string of 1-64 characters without control characters, or a JSON integer that
  fits in 64 bits (the original system's devices send 1..100), stored as its decimal text;
- timestamp: the event time in ISO-8601: date, `T` or a space, hh:mm[:ss[.0-9 digits]], then
  `Z` or an offset (+hh:mm). Without an offset it is wall-clock time in NAIVE_TIMESTAMP_ZONE_ENV
  (default UTC), or rejected when that setting is `reject`;
- heart_rate: an integer, beats per minute.
Extra fields are allowed and ignored downstream.
Key: the customer_id (UTF-8), so one customer's readings stay ordered within a partition.
"""

from __future__ import annotations

import json
from datetime import datetime

CUSTOMER_ID = "customer_id"
TIMESTAMP = "timestamp"
HEART_RATE = "heart_rate"
REQUIRED_FIELDS = (CUSTOMER_ID, TIMESTAMP, HEART_RATE)

MAX_CUSTOMER_ID_LENGTH = 64
MIN_VALID_BPM = 40  # inclusive
MAX_VALID_BPM = 180  # inclusive
MAX_CLOCK_SKEW_SECONDS = 300  # event times further ahead of processing time are rejected

# Timestamps without an offset: an IANA zone to read them in, or REJECT_NAIVE_TIMESTAMPS.
NAIVE_TIMESTAMP_ZONE_ENV = "HEARTBEAT_NAIVE_TIMESTAMP_ZONE"
DEFAULT_NAIVE_TIMESTAMP_ZONE = "UTC"
REJECT_NAIVE_TIMESTAMPS = "reject"

# Why a message is quarantined, in the order the checks apply (the first failing check wins).
MALFORMED_JSON = "malformed_json"
MISSING_FIELD = "missing_field"
INVALID_TYPE = "invalid_type"
INVALID_TIMESTAMP = "invalid_timestamp"
OUT_OF_RANGE = "out_of_range"
QUARANTINE_REASONS = (MALFORMED_JSON, MISSING_FIELD, INVALID_TYPE, INVALID_TIMESTAMP, OUT_OF_RANGE)


def to_milliseconds(moment: datetime) -> datetime:
    """`moment` as a message carries it (and as Kafka stamps a record): whole milliseconds. A
    moment compared with a parsed message time must be cut the same way."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def format_timestamp(moment: datetime) -> str:
    """ISO-8601 in UTC with millisecond precision and a `Z` suffix."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def encode_reading(customer_id: str, moment: datetime, heart_rate: int) -> tuple[bytes, bytes]:
    """The (key, value) bytes of one reading as the contract defines them."""
    value = {CUSTOMER_ID: customer_id, TIMESTAMP: format_timestamp(moment), HEART_RATE: heart_rate}
    return customer_id.encode(), json.dumps(value, separators=(",", ":")).encode()
