"""Webhook signatures: HMAC-SHA256 of the raw body with the channel's secret (README,
"Notifications" shows a receiver verifying one)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "X-Heartbeat-Signature"
DELIVERY_HEADER = "X-Heartbeat-Delivery"
TIMESTAMP_HEADER = "X-Heartbeat-Timestamp"


def new_secret() -> str:
    """A channel's signing secret: 256 random bits, shown once when the channel is added."""
    return secrets.token_hex(32)


def signature(secret: str, body: bytes) -> str:
    """The header's value: `sha256=<hex>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does, in constant time."""
    return hmac.compare_digest(signature(secret, body), header or "")
