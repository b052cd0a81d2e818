"""The Xero sandbox's switches: limits and the readings chosen where Xero's documents are silent.

Each switch is listed in ``xero_sandbox/README.md`` with the reading behind its default.
``checked(name, value)`` coerces a value to the default's type (``ValueError`` if refused).
"""

from __future__ import annotations

from typing import Any

SCOPE_MODELS = ("granular", "broad")
SAME_FILENAME = ("replace", "add")

DEFAULT_SWITCHES: dict[str, Any] = {
    # OAuth 2.0 (Xero's developer pages: 30-minute access tokens, refresh tokens 60 days unused).
    "access_token_lifetime": 1800,
    "refresh_token_lifetime": 60 * 24 * 3600,
    # Seconds a rotated refresh token is still accepted (0: reuse fails with invalid_grant).
    "refresh_token_grace_seconds": 0,
    "code_lifetime": 300,
    # granular (apps created since March 2026) | broad (the spec's accounting.transactions).
    "scope_model": "granular",
    # Rate limits (per tenant: minute, day, in flight; per app: minute).
    "minute_limit": 60,
    "day_limit": 5000,
    "concurrent_limit": 5,
    "app_minute_limit": 10000,
    # Attachments: bytes per file and files per document.
    "attachment_max_bytes": 25 * 1024 * 1024,
    "attachment_max_count": 10,
    "attachment_same_filename": "replace",  # replace | add
    # Idempotency-Key: seconds a key is remembered.
    "idempotency_key_ttl_seconds": 24 * 3600,
    # Lock dates bind DRAFT documents too (False: only POSTED/AUTHORISED postings).
    "lock_date_applies_to_drafts": False,
    # Accounting calls must ask for JSON (Xero answers XML otherwise): 406 when they do not.
    "accept_json_required": True,
    "stall_seconds": 3.0,
}
_CHOICES = {"scope_model": SCOPE_MODELS, "attachment_same_filename": SAME_FILENAME}


def defaults() -> dict[str, Any]:
    return dict(DEFAULT_SWITCHES)


def checked(name: str, value: Any) -> Any:
    if name not in DEFAULT_SWITCHES:
        raise ValueError(f"unknown switch {name!r}")
    if name in _CHOICES:
        if value not in _CHOICES[name]:
            raise ValueError(f"switch {name} must be one of {_CHOICES[name]}")
        return value
    default = DEFAULT_SWITCHES[name]
    if isinstance(default, bool):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    value = type(default)(value)
    if value < 0:
        raise ValueError(f"switch {name} must be >= 0")
    return value
