"""Standard Webhooks signing, as Pleo's webhook deliveries use it.

``webhook-signature: v1,<base64 HMAC-SHA256>`` where the key is the base64-decoded part of the
``whsec_`` secret and the signed message is ``f"{webhook_id}.{webhook_timestamp}.{body}"``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import string
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 300
_ID_ALPHABET = string.ascii_letters + string.digits


def _key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(raw)


def _as_text(body: bytes | str) -> bytes:
    return body if isinstance(body, bytes) else body.encode("utf-8")


def sign(secret: str, webhook_id: str, timestamp: int | str, body: bytes | str) -> str:
    """Return the ``v1,<base64>`` signature of one delivery."""
    message = f"{webhook_id}.{timestamp}.".encode() + _as_text(body)
    digest = hmac.new(_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Check a delivery's headers (case-insensitive names) against ``secret``.

    Accepts a signature header with several space-separated ``v1,<sig>`` entries, compares in
    constant time and rejects timestamps further than ``tolerance_seconds`` from ``now``.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    webhook_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not webhook_id or not timestamp or not signatures:
        return False
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_seconds:
        return False
    expected = sign(secret, webhook_id, timestamp, body).split(",", 1)[1]
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            return True
    return False


def new_secret(rng: random.Random, n_bytes: int = 24) -> str:
    """A ``whsec_`` secret holding ``n_bytes`` random bytes (base64)."""
    return SECRET_PREFIX + base64.b64encode(rng.randbytes(n_bytes)).decode("ascii")


def new_message_id(rng: random.Random) -> str:
    """A Svix-style message id: ``msg_`` and 27 alphanumerics."""
    return "msg_" + "".join(rng.choice(_ID_ALPHABET) for _ in range(27))
