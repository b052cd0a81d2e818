"""Standard Webhooks signatures, as Pleo's webhook deliveries carry them (reference §5.3).

Headers ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` (one or
more space-separated ``v1,<base64>`` entries). The signature is HMAC-SHA256, keyed with the
base64-decoded part of the ``whsec_`` secret, over ``f"{id}.{timestamp}.".encode() + body``.

:func:`verify` accepts when any ``v1`` entry matches any of the given secrets and the timestamp is
within the tolerance of ``now`` (both ways). Every problem, malformed input included, raises a
:class:`WebhookVerificationError` subclass: a forged or broken request must become a 4xx, never a
``ValueError`` turned into a 500. Nothing here logs, and no message quotes a secret or signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300

# Bounds for what a sender may put in the headers; anything larger is malformed, not parsed.
MAX_ID_LENGTH = 200  # WebhookDelivery.webhook_id's max_length
MAX_SIGNATURE_HEADER_LENGTH = 4096
MAX_SIGNATURE_ENTRIES = 16
_DIGEST_SIZE = hashlib.sha256().digest_size

_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")
_ID_RE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class RejectReason(StrEnum):
    """Why a webhook request was refused: short, stable codes for counters and logs."""

    INVALID = "invalid"
    MISSING_HEADER = "missing_header"
    MALFORMED_ID = "malformed_id"
    MALFORMED_TIMESTAMP = "malformed_timestamp"
    MALFORMED_SIGNATURE = "malformed_signature"
    NO_V1_SIGNATURE = "no_v1_signature"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    TIMESTAMP_TOO_NEW = "timestamp_too_new"
    NO_SECRET = "no_secret"
    SIGNATURE_MISMATCH = "signature_mismatch"
    BAD_CONTENT_LENGTH = "bad_content_length"
    BODY_TOO_LARGE = "body_too_large"
    LENGTH_REQUIRED = "length_required"
    UNREADABLE_BODY = "unreadable_body"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNKNOWN_ENDPOINT = "unknown_endpoint"


class WebhookVerificationError(Exception):
    """A delivery could not be verified. ``reason`` is a short, stable code for counters; each
    subclass names its own in its class line (``class X(WebhookVerificationError, reason=...)``).
    """

    reason = RejectReason.INVALID

    def __init_subclass__(cls, *, reason: RejectReason, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.reason = reason


class MissingHeader(WebhookVerificationError, reason=RejectReason.MISSING_HEADER): ...


class MalformedId(WebhookVerificationError, reason=RejectReason.MALFORMED_ID): ...


class MalformedTimestamp(WebhookVerificationError, reason=RejectReason.MALFORMED_TIMESTAMP): ...


class MalformedSignature(WebhookVerificationError, reason=RejectReason.MALFORMED_SIGNATURE): ...


class NoSupportedSignature(WebhookVerificationError, reason=RejectReason.NO_V1_SIGNATURE):
    """The header is well formed but holds no ``v1`` entry."""


class TimestampTooOld(WebhookVerificationError, reason=RejectReason.TIMESTAMP_TOO_OLD): ...


class TimestampTooNew(WebhookVerificationError, reason=RejectReason.TIMESTAMP_TOO_NEW): ...


class NoUsableSecret(WebhookVerificationError, reason=RejectReason.NO_SECRET):
    """The endpoint has no active, well-formed signing secret (a configuration problem)."""


class SignatureMismatch(WebhookVerificationError, reason=RejectReason.SIGNATURE_MISMATCH): ...


class InvalidSecret(ValueError):
    """A signing secret is not ``whsec_`` + base64 (raised by :func:`sign`; :func:`verify` skips
    such a secret and raises :class:`NoUsableSecret` when none is left)."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (the prefix is optional)."""
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        key = base64.b64decode(raw.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise InvalidSecret("the signing secret is not whsec_ followed by base64") from None
    if not key:
        raise InvalidSecret("the signing secret is empty")
    return key


def _digest(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    message = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, message, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes | str) -> str:
    """The ``v1,<base64>`` signature of one delivery (for tests and the sandbox)."""
    if isinstance(body, str):
        body = body.encode()
    digest = _digest(secret_key(secret), msg_id, str(timestamp), body)
    return f"{SIGNATURE_VERSION}," + base64.b64encode(digest).decode("ascii")


def parse_timestamp(value: str | None) -> int:
    """The ``webhook-timestamp`` header as Unix seconds (ASCII digits only)."""
    if value is None or value == "":
        raise MissingHeader("webhook-timestamp is missing")
    if not isinstance(value, str) or not _TIMESTAMP_RE.fullmatch(value):
        raise MalformedTimestamp("webhook-timestamp is not a Unix time in seconds")
    return int(value)


def _check_id(msg_id: str | None) -> str:
    if msg_id is None or msg_id == "":
        raise MissingHeader("webhook-id is missing")
    if not isinstance(msg_id, str) or len(msg_id) > MAX_ID_LENGTH or not _ID_RE.fullmatch(msg_id):
        raise MalformedId(
            f"webhook-id must be 1 to {MAX_ID_LENGTH} printable ASCII characters without spaces"
        )
    return msg_id


def parse_signatures(header: str | None) -> list[bytes]:
    """The decoded ``v1`` signatures of a ``webhook-signature`` header.

    Entries of other versions are skipped (forward compatible); a header that is not a list of
    ``<version>,<base64>`` entries is malformed as a whole.
    """
    if header is None:
        raise MissingHeader("webhook-signature is missing")
    if not isinstance(header, str) or not header.isascii():
        raise MalformedSignature("webhook-signature is not ASCII")
    if len(header) > MAX_SIGNATURE_HEADER_LENGTH:
        raise MalformedSignature("webhook-signature is too long")
    entries = header.split()
    if not entries:
        raise MalformedSignature("webhook-signature is empty")
    if len(entries) > MAX_SIGNATURE_ENTRIES:
        raise MalformedSignature("webhook-signature has too many entries")
    found: list[bytes] = []
    for entry in entries:
        parts = entry.split(",")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise MalformedSignature("webhook-signature entries must be <version>,<signature>")
        version, value = parts
        if version != SIGNATURE_VERSION:
            continue
        if not _BASE64_RE.fullmatch(value):
            raise MalformedSignature("a v1 signature is not base64")
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedSignature("a v1 signature is not base64") from None
        if len(decoded) != _DIGEST_SIZE:
            raise MalformedSignature("a v1 signature has the wrong length")
        found.append(decoded)
    if not found:
        raise NoSupportedSignature("webhook-signature holds no v1 signature")
    return found


def _now_seconds(now: datetime | float | int | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        return now.timestamp()
    return float(now)


def verify(
    secrets: Iterable[str],
    *,
    msg_id: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: datetime | float | int | None = None,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """Verify one delivery; return its timestamp (Unix seconds) or raise a
    :class:`WebhookVerificationError` subclass.

    ``secrets`` are the endpoint's active secrets (retired ones must not be passed). ``now``
    defaults to the system time; tests inject it.
    """
    msg_id = _check_id(msg_id)
    sent_at = parse_timestamp(timestamp)
    candidates = parse_signatures(signature)
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("body must be the raw request bytes")
    current = _now_seconds(now)
    if sent_at < current - tolerance_seconds:
        raise TimestampTooOld("webhook-timestamp is older than the tolerance")
    if sent_at > current + tolerance_seconds:
        raise TimestampTooNew("webhook-timestamp is in the future beyond the tolerance")
    keys = []
    for secret in secrets:
        try:
            keys.append(secret_key(secret))
        except InvalidSecret:
            continue
    if not keys:
        raise NoUsableSecret("no active, well-formed signing secret is configured")
    matched = False
    for key in keys:
        expected = _digest(key, msg_id, str(timestamp), bytes(body))
        for candidate in candidates:
            # No early exit: every comparison runs, each in constant time.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureMismatch("no signature matches an active secret")
    return sent_at
