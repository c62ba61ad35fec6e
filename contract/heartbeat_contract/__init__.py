"""The contracts every part of heartbeat shares, in one package: the Kafka message format and its
validation rules (message), the alert event (alerts), the rollups' histogram (histogram) and the
settings with their environment names and defaults (settings).

The names most callers need are re-exported here.
"""

from .alerts import (
    ALERT_KINDS,
    BRADYCARDIA,
    BRADYCARDIA_BELOW_BPM,
    TACHYCARDIA,
    TACHYCARDIA_ABOVE_BPM,
    alert_id,
    alert_message,
)
from .histogram import BIN_COUNT, BIN_WIDTH_BPM
from .message import (
    CUSTOMER_ID,
    DEFAULT_NAIVE_TIMESTAMP_ZONE,
    HEART_RATE,
    INVALID_TIMESTAMP,
    INVALID_TYPE,
    MALFORMED_JSON,
    MAX_CLOCK_SKEW_SECONDS,
    MAX_CUSTOMER_ID_LENGTH,
    MAX_VALID_BPM,
    MIN_VALID_BPM,
    MISSING_FIELD,
    NAIVE_TIMESTAMP_ZONE_ENV,
    OUT_OF_RANGE,
    QUARANTINE_REASONS,
    REJECT_NAIVE_TIMESTAMPS,
    REQUIRED_FIELDS,
    TIMESTAMP,
    encode_reading,
    format_timestamp,
)

__all__ = [
    "ALERT_KINDS",
    "BIN_COUNT",
    "BIN_WIDTH_BPM",
    "BRADYCARDIA",
    "BRADYCARDIA_BELOW_BPM",
    "CUSTOMER_ID",
    "DEFAULT_NAIVE_TIMESTAMP_ZONE",
    "HEART_RATE",
    "INVALID_TIMESTAMP",
    "INVALID_TYPE",
    "MALFORMED_JSON",
    "MAX_CLOCK_SKEW_SECONDS",
    "MAX_CUSTOMER_ID_LENGTH",
    "MAX_VALID_BPM",
    "MIN_VALID_BPM",
    "MISSING_FIELD",
    "NAIVE_TIMESTAMP_ZONE_ENV",
    "OUT_OF_RANGE",
    "QUARANTINE_REASONS",
    "REJECT_NAIVE_TIMESTAMPS",
    "REQUIRED_FIELDS",
    "TACHYCARDIA",
    "TACHYCARDIA_ABOVE_BPM",
    "TIMESTAMP",
    "alert_id",
    "alert_message",
    "encode_reading",
    "format_timestamp",
]
