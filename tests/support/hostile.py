"""Hypothesis strategies for hostile Kafka values, each with the outcome the rules give it.

Every value is built so that its outcome follows from the README's rules alone (first failing
check wins), never from running the validation code: the test is an independent oracle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

MALFORMED_JSON, MISSING_FIELD, INVALID_TYPE = "malformed_json", "missing_field", "invalid_type"
INVALID_TIMESTAMP, OUT_OF_RANGE, VALID = "invalid_timestamp", "out_of_range", "valid"

INJECTIONS = (
    "'; DROP TABLE heart_rate_readings; --", "Robert'); DELETE FROM rejected_readings; --",
    "<script>alert('x')</script>", "<img src=x onerror=alert(1)>", "%s", "%(customer_id)s",
    "\\N", "$$; SELECT pg_sleep(10); $$", "\" OR 1=1 --", "{{7*7}}", "NULL", "null",
    "Zoë \"O'Brien\" 客户 🫀",
)  # fmt: skip
BAD_TIMESTAMP_SHAPES = (
    "2026-11-29", "1764446340", "yesterday", "", "2026-02-30T10:00:00Z", "2026-11-29T25:00:00Z",
    "2026-11-29T19:59:00+0530", "now", "29/11/2026 19:59:00Z", "2026-11-29T19:59:00 Z",
    "2026-11-29T19:59:00.1234567890", "2026-11-29t19:59:00Z", "2026-02-30 10:00:00",
)  # fmt: skip


@dataclass(frozen=True)
class Hostile:
    value: bytes | None
    outcome: str
    customer_id: str | None = None  # for valid rows: what must be stored
    heart_rate: int | None = None
    timestamp: datetime | None = None


def _body(customer_id: object, timestamp: object, heart_rate: object, **extra: object) -> bytes:
    body = {"customer_id": customer_id, "timestamp": timestamp, "heart_rate": heart_rate, **extra}
    return json.dumps(body, ensure_ascii=False).encode()


# Customer ids the rules accept: 1-64 characters, no control characters, any script; or a JSON
# integer within 64 bits, stored as its decimal text.
valid_customer_ids = st.one_of(
    st.sampled_from(INJECTIONS),
    st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=64),
)
valid_integer_ids = st.integers(-(2**63), 2**63 - 1)
valid_bpm = st.integers(40, 180)


@st.composite
def valid_timestamps(draw) -> tuple[str, datetime]:
    """(text, instant) in the accepted shapes: `T` or a space, seconds, 0-9 fraction digits (kept
    to the microsecond), then Z, an offset, or nothing (read as UTC, the job's default)."""
    now = datetime.now(UTC).replace(microsecond=0)
    micros = draw(st.integers(0, 999_999))
    instant = now - timedelta(seconds=draw(st.integers(0, 2 * 86_400)), microseconds=micros)
    minutes = draw(st.sampled_from([0, 0, 60, 330, -300, 345, -720, 840]))
    local = instant.astimezone(timezone(timedelta(minutes=minutes)))
    digits = draw(st.integers(0, 9))
    text = local.strftime("%Y-%m-%d" + draw(st.sampled_from("T ")) + "%H:%M:%S")
    if digits:
        text += "." + f"{local.microsecond:06d}{draw(st.integers(0, 999)):03d}"[:digits]
    suffix = draw(st.sampled_from(["Z", "", "+00:00"])) if minutes == 0 else None
    if suffix is not None:
        text += suffix
    else:
        sign = "+" if minutes >= 0 else "-"
        text += f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    kept = int(f"{instant.microsecond:06d}"[: min(digits, 6)].ljust(6, "0")) if digits else 0
    return text, instant.replace(microsecond=kept)


# Extra fields are ignored: huge strings, nesting, special numbers ride along with valid readings.
extras = st.dictionaries(
    st.sampled_from(["note", "device", "nested", "n", "blob"]),
    st.one_of(
        st.integers(1, 100_000).map(lambda n: "x" * n),
        st.integers(1, 30).map(lambda d: json.loads("[" * d + "]" * d)),
        st.sampled_from([1e308, -0.0, 10**40, -(10**40), 5e-324, None, True, "", []]),
    ),
    max_size=2,
)


@st.composite
def valid_readings(draw) -> Hostile:
    customer_id = draw(st.one_of(valid_customer_ids, valid_integer_ids))
    text, instant = draw(valid_timestamps())
    bpm = draw(valid_bpm)
    value = _body(customer_id, text, bpm, **draw(extras))
    return Hostile(value, VALID, str(customer_id), bpm, instant)


@st.composite
def rejected_messages(draw) -> Hostile:
    good_ts = draw(valid_timestamps())[0]
    cid = draw(valid_customer_ids)
    kind = draw(st.integers(0, 13))
    if kind == 0:  # not UTF-8
        return Hostile(b"\xff" + draw(st.binary(max_size=300)), MALFORMED_JSON)
    if kind == 1:  # unterminated JSON: cannot be closed without a brace
        tail = draw(st.text(st.characters(exclude_characters="}", exclude_categories=("Cs",))))
        return Hostile(('{"customer_id": ' + tail).encode(), MALFORMED_JSON)
    if kind == 2:  # deep nesting: an array (never an object), possibly past any parser's limit
        depth = draw(st.integers(1, 20_000))
        return Hostile(("[" * depth + "]" * depth).encode(), MALFORMED_JSON)
    if kind == 3:  # JSON that is not an object; empty; Kafka null
        value = draw(st.sampled_from([b"null", b"72", b'"text"', b"true", b"[]", b"", None,
                                      b"1e999", b" ", b"\x00"]))  # fmt: skip
        return Hostile(value, MALFORMED_JSON)
    if kind == 4:  # duplicate keys
        return Hostile(
            f'{{"customer_id": {json.dumps(cid)}, "customer_id": "other", "timestamp":'
            f' "{good_ts}", "heart_rate": 72}}'.encode(),
            MALFORMED_JSON,
        )
    if kind == 5:  # a required field absent or null
        body = {"customer_id": cid, "timestamp": good_ts, "heart_rate": 72}
        for name in draw(st.sets(st.sampled_from(sorted(body)), min_size=1)):
            if draw(st.booleans()):
                del body[name]
            else:
                body[name] = None
        return Hostile(json.dumps(body).encode(), MISSING_FIELD)
    if kind == 6:  # heart_rate not a JSON integer (any timestamp: type wins over it)
        bpm = draw(st.sampled_from(["72", 72.5, 72.0, True, False, 2**63, -(2**63) - 1, 10**30,
                                    [72], {"bpm": 72}, 1e308, "", "NaN"]))  # fmt: skip
        return Hostile(_body(cid, draw(st.sampled_from([good_ts, "bad"])), bpm), INVALID_TYPE)
    if kind == 7:  # customer_id neither a string of 1-64 characters without control characters
        # nor a JSON integer within 64 bits
        bad = draw(st.one_of(
            st.just(""), st.integers(65, 100_000).map(lambda n: "C" * n),
            st.tuples(valid_customer_ids, st.characters(min_codepoint=0, max_codepoint=31))
              .map(lambda t: t[0][:63] + t[1]),
            st.just("C\x7f"), st.sampled_from([2**63, -(2**63) - 1, 2**64 + 7, 7.5, 7.0, 1e3,
                                               True, ["C1"], {"id": "C1"}]),
        ))  # fmt: skip
        return Hostile(_body(bad, good_ts, 72), INVALID_TYPE)
    if kind == 8:  # timestamp in a shape the rules refuse
        ts = draw(st.one_of(
            st.sampled_from(BAD_TIMESTAMP_SHAPES),
            st.integers(-(2**53), 2**53),
            st.sampled_from([1.5e9, [], {}]),
        ))  # fmt: skip
        return Hostile(_body(cid, ts, draw(st.integers(-1000, 1000))), INVALID_TIMESTAMP)
    if kind == 9:  # too far in the future (beyond the 5 minutes of allowed skew)
        ahead = datetime.now(UTC) + timedelta(seconds=draw(st.integers(900, 400 * 86_400)))
        text = ahead.strftime("%Y-%m-%dT%H:%M:%SZ")
        return Hostile(_body(cid, text, 72), INVALID_TIMESTAMP)
    if kind == 10:  # a JSON integer outside 40..180, within 64 bits
        bpm = draw(st.one_of(st.integers(-(2**63), 39), st.integers(181, 2**63 - 1)))
        return Hostile(_body(cid, good_ts, bpm), OUT_OF_RANGE)
    if kind == 11:  # random UTF-8 text that no JSON parser reads ("~" starts no JSON value)
        return Hostile(("~" + draw(st.text())).encode(), MALFORMED_JSON)
    if kind == 12:  # a huge value well under the broker's limit
        return Hostile(b"{" + b"x" * draw(st.integers(1, 100_000)), MALFORMED_JSON)
    return Hostile(_body(cid, good_ts, 72)[:-1] + b",}", MALFORMED_JSON)  # trailing comma


hostile_messages = st.one_of(valid_readings(), rejected_messages())
