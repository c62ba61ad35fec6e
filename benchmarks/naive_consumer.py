"""The naive design this product replaces, as the benchmarks' baseline (not a benchmark itself).

A kafka-python consumer with auto-commit that validates each message and inserts it with one
autocommit INSERT per row: what the original system did. It loses a reading when an insert
fails after its offset was committed, and its speed is one database round trip per message.
"""

from __future__ import annotations

import time

import orjson
import psycopg2
from kafka import KafkaConsumer
from psycopg2 import sql

_INSERT = (
    'INSERT INTO {} (customer_id, "timestamp", heart_rate, kafka_topic, kafka_partition,'
    " kafka_offset) VALUES (%s, %s, %s, %s, %s, %s)"
)


def _valid(value: bytes) -> tuple[str, str, int] | None:
    try:
        body = orjson.loads(value)
        customer_id, timestamp, heart_rate = (
            body["customer_id"],
            body["timestamp"],
            body["heart_rate"],
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if type(heart_rate) is not int or not 40 <= heart_rate <= 180:
        return None
    return str(customer_id), timestamp, heart_rate


def consume(kafka_args: dict, topic: str, dsn: str, table: str, seconds: float) -> float:
    """Consume from the start of `topic` for `seconds`; return messages handled per second.
    `kafka_args`: where the broker is and who logs in (kafka-python arguments)."""
    consumer = KafkaConsumer(
        topic,
        **kafka_args,
        group_id=f"naive-{table}",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    insert = sql.SQL(_INSERT).format(sql.Identifier(table))
    handled, started = 0, None
    try:
        with conn.cursor() as cur:
            while started is None or time.monotonic() - started < seconds:
                for records in consumer.poll(timeout_ms=1000, max_records=500).values():
                    started = started or time.monotonic()
                    for record in records:
                        reading = _valid(record.value)
                        if reading:
                            cur.execute(insert, (*reading, topic, record.partition, record.offset))
                        handled += 1
    finally:
        consumer.close()
        conn.close()
    return handled / (time.monotonic() - started)
