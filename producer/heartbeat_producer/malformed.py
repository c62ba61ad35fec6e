"""Broken messages for quarantine tests, each with the one reason the streaming job must give.

Every variant has exactly one defect and is otherwise a valid reading, so its expected outcome
is unambiguous under the validation order (malformed_json, missing_field, invalid_type,
invalid_timestamp; out_of_range comes from sensor glitches in the simulator, not from here).
Reasons are dealt from a shuffled bag, so each appears equally often (within one bag of four).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from random import Random

from heartbeat_contract import (
    CUSTOMER_ID,
    HEART_RATE,
    INVALID_TIMESTAMP,
    INVALID_TYPE,
    MALFORMED_JSON,
    MAX_CUSTOMER_ID_LENGTH,
    MISSING_FIELD,
    REQUIRED_FIELDS,
    TIMESTAMP,
    format_timestamp,
)

MALFORMED_REASONS = (MALFORMED_JSON, MISSING_FIELD, INVALID_TYPE, INVALID_TIMESTAMP)


class Reading:
    """The valid reading a broken message is derived from."""

    __slots__ = ("customer_id", "epoch_ms", "heart_rate", "timestamp")

    def __init__(self, customer_id: str, timestamp: str, heart_rate: int, epoch_ms: int) -> None:
        self.customer_id = customer_id
        self.timestamp = timestamp
        self.heart_rate = heart_rate
        self.epoch_ms = epoch_ms

    def body(self) -> dict[str, object]:
        return {
            CUSTOMER_ID: self.customer_id,
            TIMESTAMP: self.timestamp,
            HEART_RATE: self.heart_rate,
        }


Variant = Callable[[Random, Reading], object]  # returns bytes, or a dict to be JSON-encoded


def _dumps(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


# --- malformed_json: the value is not a JSON object ---------------------------------------------
def _truncated(rng: Random, r: Reading) -> bytes:
    text = _dumps(r.body())
    return text[: rng.randrange(0, len(text))]  # every proper prefix lacks the closing brace


def _plain_text(rng: Random, r: Reading) -> bytes:
    text = f"{CUSTOMER_ID}={r.customer_id};{TIMESTAMP}={r.timestamp};{HEART_RATE}={r.heart_rate}"
    return text.encode()


def _json_array(rng: Random, r: Reading) -> bytes:
    return _dumps([r.customer_id, r.timestamp, r.heart_rate])


def _not_utf8(rng: Random, r: Reading) -> bytes:
    return b"\xff\xfe" + _dumps(r.body())


# --- missing_field: a required field absent or null ---------------------------------------------
def _field_absent(rng: Random, r: Reading) -> dict[str, object]:
    body = r.body()
    del body[rng.choice(REQUIRED_FIELDS)]
    return body


def _field_null(rng: Random, r: Reading) -> dict[str, object]:
    body = r.body()
    body[rng.choice(REQUIRED_FIELDS)] = None
    return body


# --- invalid_type: heart_rate not a JSON integer, or customer_id not a 1-64 character string ----
def _with(r: Reading, field: str, value: object) -> dict[str, object]:
    return {**r.body(), field: value}


def _rate_as_string(rng: Random, r: Reading) -> dict[str, object]:
    return _with(r, HEART_RATE, str(r.heart_rate))


def _rate_as_fraction(rng: Random, r: Reading) -> dict[str, object]:
    return _with(r, HEART_RATE, r.heart_rate + 0.5)


def _rate_as_integral_float(rng: Random, r: Reading) -> dict[str, object]:
    return _with(r, HEART_RATE, float(r.heart_rate))  # 72.0 is a JSON number, not an integer


def _rate_as_boolean(rng: Random, r: Reading) -> dict[str, object]:
    return _with(r, HEART_RATE, True)


def _id_as_fraction(rng: Random, r: Reading) -> dict[str, object]:
    digits = "".join(ch for ch in r.customer_id if ch.isdigit()) or "0"
    return _with(r, CUSTOMER_ID, int(digits) + 0.5)  # integer ids are accepted, fractions not


def _id_beyond_64_bits(rng: Random, r: Reading) -> dict[str, object]:
    digits = "".join(ch for ch in r.customer_id if ch.isdigit()) or "0"
    return _with(r, CUSTOMER_ID, 2**64 + int(digits))


def _id_empty(rng: Random, r: Reading) -> dict[str, object]:
    return _with(r, CUSTOMER_ID, "")


def _id_too_long(rng: Random, r: Reading) -> dict[str, object]:
    padded = r.customer_id + "-" * MAX_CUSTOMER_ID_LENGTH
    return _with(r, CUSTOMER_ID, padded[: MAX_CUSTOMER_ID_LENGTH + 1])


# --- invalid_timestamp: not an accepted ISO-8601 shape, or too far in the future ----------------
# (No offset and a space for `T` are accepted: the original system's devices send both.)
def _date_only(rng: Random, r: Reading) -> dict[str, object]:
    return _with(r, TIMESTAMP, r.timestamp[:10])


def _offset_without_colon(rng: Random, r: Reading) -> dict[str, object]:
    return _with(r, TIMESTAMP, r.timestamp.removesuffix("Z") + "+0000")


def _epoch_number(rng: Random, r: Reading) -> dict[str, object]:
    return _with(r, TIMESTAMP, r.epoch_ms // 1000)


def _month_13(rng: Random, r: Reading) -> dict[str, object]:
    return _with(r, TIMESTAMP, r.timestamp[:5] + "13" + r.timestamp[7:])


def _far_future(rng: Random, r: Reading) -> dict[str, object]:
    """A device clock set days to months ahead: future relative to any timely processing."""
    moment = datetime.fromtimestamp(r.epoch_ms // 1000, UTC) + timedelta(
        days=rng.randint(1, 365), seconds=rng.randint(0, 86_399)
    )
    return _with(r, TIMESTAMP, format_timestamp(moment))


VARIANTS: dict[str, tuple[Variant, ...]] = {
    MALFORMED_JSON: (_truncated, _plain_text, _json_array, _not_utf8),
    MISSING_FIELD: (_field_absent, _field_null),
    INVALID_TYPE: (
        _rate_as_string,
        _rate_as_fraction,
        _rate_as_integral_float,
        _rate_as_boolean,
        _id_as_fraction,
        _id_beyond_64_bits,
        _id_empty,
        _id_too_long,
    ),
    INVALID_TIMESTAMP: (
        _date_only,
        _offset_without_colon,
        _epoch_number,
        _month_13,
        _far_future,
    ),
}


class Malformer:
    """Deals broken messages: reasons from a shuffled bag, a random variant of each."""

    def __init__(self, rng: Random) -> None:
        self._rng = rng
        self._bag: list[str] = []

    def next_reason(self) -> str:
        if not self._bag:
            self._bag = list(MALFORMED_REASONS)
            self._rng.shuffle(self._bag)
        return self._bag.pop()

    def make(self, reading: Reading) -> tuple[bytes, str]:
        """(value bytes, expected quarantine reason) for one broken message."""
        reason = self.next_reason()
        variant = self._rng.choice(VARIANTS[reason])
        value = variant(self._rng, reading)
        return (value if isinstance(value, bytes) else _dumps(value)), reason
