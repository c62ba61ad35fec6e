"""The classifier's fast path (one pattern for the producer's shape) against the VARIANT-only
reading it stands in for: identical rows for every value of every corpus the tests have, in each
naive-timestamp setting, and the fast path really taken for the common shapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from random import Random

import pytest
from chispa import assert_df_equality
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from heartbeat_contract import encode_reading
from heartbeat_producer.encoding import LegacyEncoder, ReadingEncoder
from heartbeat_producer.malformed import VARIANTS, Reading
from heartbeat_producer.mix import known_mix
from heartbeat_stream.transforms.validation import FAST_SHAPE, parse_messages
from tests.support.classify import kafka_rows
from tests.support.hostile import BAD_TIMESTAMP_SHAPES, INJECTIONS, hostile_messages
from tests.support.known_mix import special_messages

pytestmark = pytest.mark.unit

NAIVE_SETTINGS = ("UTC", "Asia/Kolkata", "reject")
TS = "2026-11-29T19:59:00.123Z"


def body(customer_id: str = '"C1"', timestamp: str = f'"{TS}"', heart_rate: str = "72") -> str:
    """The producer's compact shape around three raw JSON tokens."""
    return f'{{"customer_id":{customer_id},"timestamp":{timestamp},"heart_rate":{heart_rate}}}'


GOOD = body(customer_id='"C0001"').encode()  # a reading as the producer sends it


def near_misses() -> list[bytes | None]:
    """Values at each edge of FAST_SHAPE: what it must read exactly, and what it must leave to
    the VARIANT reading (escapes, control characters, numbers JSON or an int cannot hold, other
    key orders and spellings, whitespace JSON does not allow, trailing text, ...)."""
    ids = ['"C\\"1"', '"C\\\\1"', '"\\u0043\\u0031"', '"C\\/1"', '"\\ud83e\\udec0"', '"\\ud800"',
           '"C\\u0000"', '"C\t1"', '"C\n1"', '"C\x001"', '"C\x7f"', '"C\u00a01"', '""',
           f'"{"C" * 64}"', f'"{"C" * 65}"', f'"{"🫀" * 64}"', f'"{"🫀" * 65}"',
           '"Zoë 客户 e\u0301"', "0", "-0", "-17", "017", "+17", str(10**17 + 3),
           str(10**18 + 3), str(2**63 - 1), str(2**63), str(-(2**63)), "17.0", "1e1", "true",
           "null", '["C1"]']  # fmt: skip
    timestamps = ['"2026-11-29T19:59:00\\u002e123Z"', f'"{TS}\t"', '""',
                  '"2026-11-29T19:59:00"', '"2026-11-29 19:59"', '"2026-11-29T19:59:00+05:30"',
                  '"2026-11-29T20:04:59Z"', '"2026-11-29T20:05:01Z"', '"2026-03-29T02:30:00"',
                  "1764446340", *(f'"{shape}"' for shape in BAD_TIMESTAMP_SHAPES)]  # fmt: skip
    rates = ["0", "-0", "39", "40", "180", "181", "-72", "072", "+72", "72.0", "7.2e1", "72e0",
             "1E2", "999999999", "1000000000", "2147483647", "2147483648", "-2147483649",
             "9223372036854775808", '"72"', "null", "true", "[72]", "NaN", "Infinity", "0x48",
             " 72", "72 ", "7 2"]  # fmt: skip
    good = body()
    texts = [
        good,
        *(body(customer_id=token) for token in ids),
        *(body(timestamp=token) for token in timestamps),
        *(body(heart_rate=token) for token in rates),
        f'{{"timestamp":"{TS}","customer_id":"C1","heart_rate":72}}',
        f'{{"customer_id":"C1","heart_rate":72,"timestamp":"{TS}"}}',
        good[:-1] + ',"note":"x"}',
        '{"note":1,' + good[1:],
        '{"customer_id":"C2",' + good[1:],
        good[:-1] + ',"heart_rate":73}',
        good.replace("customer_id", "Customer_id"),
        good.replace("customer_id", "customer\\u005fid"),
        good.replace('"', "'"),
        *(good + tail for tail in ("}", "{}", " x", ",", "\u2028", "\u0085", "\x00")),
        good[:-1] + ",}",
        f"[{good}]",
        good[:-1],
        good.replace(',"timestamp"', ' "timestamp"'),
        good.replace(',"timestamp"', ',,"timestamp"'),
    ]
    # Whitespace JSON allows (space, tab, LF, CR) and characters it does not, in every gap.
    tokens = ['{', '"customer_id"', ':', '"C1"', ',', '"timestamp"', ':', f'"{TS}"', ',',
              '"heart_rate"', ':', '72', '}']  # fmt: skip
    for space in (" ", "\t", "\n", "\r", "\f", "\v", "\u00a0", "\u2028", "\u0085", "\ufeff"):
        for gap in range(len(tokens) + 1):
            texts.append("".join(tokens[:gap]) + space + "".join(tokens[gap:]))
    values: list[bytes | None] = [text.encode() for text in texts]
    values += [None, b"", GOOD[:-1], GOOD + b"\x00", GOOD[:20] + b"\xff" + GOOD[21:],
               GOOD.replace(b"C0001", "Cé".encode("latin-1")), b"\xef\xbb\xbf" + GOOD]  # fmt: skip
    return values


def producer_values() -> list[bytes | None]:
    """What the producer sends: its encoders (current and legacy), every malformed variant, the
    known mix the job tests publish, and the special cases they add."""
    rng = Random(20261203)
    start = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)
    epoch_ms = int(start.timestamp() * 1000)
    encoder, legacy = ReadingEncoder(), LegacyEncoder("Europe/Berlin")
    values: list[bytes | None] = []
    for n in range(200):
        bpm = rng.choice([35, 39, 40, 72, 180, 181, 195, rng.randint(41, 179)])
        values.append(encoder.encode(f"C{n:04d}", epoch_ms + 997 * n, bpm)[1])
        values.append(legacy.encode(str(n + 1), epoch_ms + 997 * n, bpm)[1])
        reading = Reading(f"C{n:04d}", encoder.timestamp(epoch_ms + n), bpm, epoch_ms + n)
        for variants in VARIANTS.values():
            value = rng.choice(variants)(rng, reading)
            values.append(value if isinstance(value, bytes) else json.dumps(value).encode())
    values += [m.value for m in known_mix(7, 500, now=start + timedelta(minutes=30))]
    values += [value for value, _ in special_messages(start)]
    values += [encode_reading(injection, start, 72)[1] for injection in INJECTIONS]
    return values


def mutants(seed: int, count: int) -> list[bytes]:
    """Valid readings with one byte changed, inserted or removed: fuzz near the fast shape."""
    rng = Random(seed)
    alphabet = b' \t\n"\\{}[],:-+.eE0123456789Cx\x00\x1f\x7f\xc3\xa9\xff'
    out = []
    for _ in range(count):
        value = bytearray(GOOD if rng.random() < 0.7 else json.dumps(json.loads(GOOD)).encode())
        at = rng.randrange(len(value))
        action = rng.randrange(3)
        if action == 0:
            value[at] = rng.choice(alphabet)
        elif action == 1:
            value.insert(at, rng.choice(alphabet))
        else:
            del value[at]
        out.append(bytes(value))
    return out


def assert_fast_path_matches_variant(spark, values: list[bytes | None], naive_zone: str) -> None:
    frame = kafka_rows(spark, values).cache()
    try:
        fast = parse_messages(frame, naive_zone).orderBy("kafka_offset")
        reference = parse_messages(frame, naive_zone, fast_path=False).orderBy("kafka_offset")
        assert_df_equality(fast, reference, ignore_nullable=True)
    finally:
        frame.unpersist()


@pytest.mark.parametrize("naive_zone", NAIVE_SETTINGS)
def test_fast_path_equals_variant_on_edges_producer_values_and_fuzz(spark, naive_zone):
    values = near_misses() + producer_values() + mutants(seed=len(naive_zone), count=1_500)
    assert_fast_path_matches_variant(spark, values, naive_zone)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.lists(hostile_messages, min_size=60, max_size=150))
def test_fast_path_equals_variant_on_hostile_input(spark, hostile):
    assert_fast_path_matches_variant(spark, [h.value for h in hostile], "UTC")


def takes_fast_path(spark, values: list[bytes | None]) -> list[bool]:
    """Whether FAST_SHAPE reads each value (the classifier's choice between the readings)."""
    text = F.col("value").cast("string")
    hits = kafka_rows(spark, values).select(
        F.coalesce(F.is_valid_utf8(text) & text.rlike(FAST_SHAPE), F.lit(False))
    )
    return [hit for (hit,) in hits.collect()]


def test_the_fast_path_is_taken_for_the_producers_shapes_and_only_those(spark):
    """A differential test is only worth its corpus: both readings must be exercised. The
    producer's readings (both formats) take the fast path; escapes, extra fields, other key
    orders and broken text take the VARIANT reading."""
    encoder, legacy = ReadingEncoder(), LegacyEncoder("Europe/Berlin")
    readings = [encoder.encode(f"C{n:04d}", 10**12 + 997 * n, 30 + n)[1] for n in range(200)]
    readings += [legacy.encode(str(n), 10**12 + 997 * n, 30 + n)[1] for n in range(1, 200)]
    assert all(takes_fast_path(spark, readings))
    others = [
        GOOD.replace(b"C0001", b'C\\"1'),
        GOOD.replace(b"C0001", b"C\\u00e9"),
        GOOD[:-1] + b',"note":1}',
        GOOD.replace(b'"heart_rate":72', b'"heart_rate":72.0'),
        GOOD.replace(b'"heart_rate":72', b'"heart_rate":072'),
        b'{"timestamp":"2026-11-29T19:59:00Z","customer_id":"C1","heart_rate":72}',
        GOOD + b"x",
        GOOD[:-1],
        GOOD.replace(b"C0001", b"C\xff"),
    ]
    assert not any(takes_fast_path(spark, others))
    corpus = takes_fast_path(spark, producer_values() + near_misses())
    assert corpus.count(True) > 500 and corpus.count(False) > 500, corpus.count(True)
