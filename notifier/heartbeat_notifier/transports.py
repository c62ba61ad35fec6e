"""Sending one notification once: a webhook POST (httpx) or an e-mail (smtplib). Each failure is
classified: Retryable (timeouts, connection errors, 5xx, 429 with its Retry-After, SMTP 4xx) or
Permanent (other 4xx, SMTP 5xx): the retry policy acts on that, nothing else."""

from __future__ import annotations

import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

import httpx

from .signing import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature


class DeliveryFailed(Exception):
    """One attempt failed; `status` is the HTTP or SMTP code, if there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Retryable(DeliveryFailed):
    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class Permanent(DeliveryFailed):
    pass


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def classify_http(status: int, retry_after: str | None) -> DeliveryFailed | None:
    """None for success (2xx); otherwise the failure to raise."""
    if 200 <= status < 300:
        return None
    if status == 429:
        return Retryable("HTTP 429", status, parse_retry_after(retry_after))
    if status >= 500:
        return Retryable(f"HTTP {status}", status)
    return Permanent(f"HTTP {status}", status)


def post_webhook(
    client: httpx.Client, url: str, secret: str, body: bytes, delivery_id: str, sent_at: int
) -> int:
    """POST the signed body once; the HTTP status on success."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "heartbeat-notifier",
        SIGNATURE_HEADER: signature(secret, body),
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(sent_at),
    }
    try:
        response = client.post(url, content=body, headers=headers)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as error:  # the channel's URL is wrong
        raise Permanent(f"bad URL: {error}") from None
    except httpx.TimeoutException as error:
        raise Retryable(f"timeout: {type(error).__name__}") from None
    except httpx.TransportError as error:
        raise Retryable(f"connection: {type(error).__name__}: {error}") from None
    failure = classify_http(response.status_code, response.headers.get("Retry-After"))
    if failure:
        raise failure
    return response.status_code


def send_email(
    message: EmailMessage, *, host: str, port: int, tls: str, user: str, password: str,
    timeout: float,
) -> int:  # fmt: skip
    """Hand the message to the relay once; 250 on success."""
    try:
        if tls == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                host, port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if user:
                smtp.login(user, password)
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _ in error.recipients.values()]
        kind = Retryable if all(400 <= c < 500 for c in codes) else Permanent
        raise kind(f"recipient refused: {codes}", codes[0] if codes else None) from None
    except smtplib.SMTPResponseException as error:
        kind = Retryable if 400 <= error.smtp_code < 500 else Permanent
        raise kind(f"SMTP {error.smtp_code}: {error.smtp_error!r}", error.smtp_code) from None
    except smtplib.SMTPServerDisconnected as error:
        raise Retryable(f"SMTP connection: {error}") from None
    except smtplib.SMTPException as error:  # e.g. no STARTTLS offered: retrying will not help
        raise Permanent(f"SMTP: {type(error).__name__}: {error}") from None
    except OSError as error:  # refused, unreachable, timed out (SMTPException is an OSError too)
        raise Retryable(f"SMTP connection: {type(error).__name__}: {error}") from None
    return 250
