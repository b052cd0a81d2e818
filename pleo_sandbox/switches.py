"""The sandbox's switches: what Pleo leaves undocumented or varies, chosen per test.

:data:`DEFAULT_SWITCHES` lists every switch with its default; :func:`checked` validates and
coerces one value (unknown names or values raise ``ValueError``). The store keeps the current
values (:meth:`pleo_sandbox.store.Store.set_switches`); the documented variants themselves are
described in :mod:`pleo_sandbox.variants`, the rate limit in :mod:`pleo_sandbox.ratelimit`.
"""

from __future__ import annotations

from typing import Any

from pleo_sandbox import variants
from pleo_sandbox.ratelimit import RATE_LIMIT_SCOPES

DEFAULT_SWITCHES: dict[str, Any] = {
    "list_order": "chronological",  # chronological | reverse | shuffled (stable per seed)
    "page_size_default": 20,
    "page_size_max": 100,
    "expiry_lag_seconds": 0.0,
    "default_expires_in": 3600,
    "started_on_in_progress": "422",  # "422" | "202" (idempotent, no change)
    "failed_on_pending": "422",  # "422" | "202" (pending → failed allowed)
    "item_updates_on_pending": "422",  # "accept" | "422"
    "conflict_on_create": True,  # 409 EXPORT_ALREADY_IN_PROGRESS on POST /v3/export-jobs
    "stall_seconds": 3.0,
    "webhook_retry_schedule": [0.2, 0.5, 1.0, 2.0, 5.0],
    "webhook_timeout_seconds": 2.0,
    "oauth_access_token_lifetime": 3600,  # seconds (expires_in of OAuth access tokens)
    "oauth_refresh_token_lifetime": 60 * 24 * 3600,  # Pleo: at least 60 days
    "oauth_code_lifetime": 60,  # seconds an authorization code may be exchanged
    # Steady rate limit (pleo_sandbox.ratelimit): 0 is off; the demo sets Pleo's 600.
    "rate_limit_per_minute": 0,
    "rate_limit_scope": "credential",  # credential | oauth_client | global
    "rate_limit_window_seconds": 60.0,  # the "minute" (shorter in tests)
    # Documented variants and silences (pleo_sandbox.variants).
    **variants.SWITCH_DEFAULTS,
}
_INT_SWITCHES = (
    "page_size_default",
    "page_size_max",
    "default_expires_in",
    "oauth_access_token_lifetime",
    "oauth_refresh_token_lifetime",
    "oauth_code_lifetime",
)
_SWITCH_CHOICES = {
    "list_order": ("chronological", "reverse", "shuffled"),
    "started_on_in_progress": ("422", "202"),
    "failed_on_pending": ("422", "202"),
    "item_updates_on_pending": ("accept", "422"),
    "rate_limit_scope": RATE_LIMIT_SCOPES,
    **variants.CHOICE_SWITCHES,
}
_BOOL_SWITCHES = ("conflict_on_create", *variants.BOOL_SWITCHES)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return bool(value)


def defaults() -> dict[str, Any]:
    """A fresh copy of the defaults (lists copied, so changing one never changes the defaults)."""
    return copy(DEFAULT_SWITCHES)


def copy(switches: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in switches.items()}


def checked(name: str, value: Any) -> Any:
    """``value`` for switch ``name``, coerced to the switch's type; ValueError if refused."""
    if name not in DEFAULT_SWITCHES:
        raise ValueError(f"unknown switch {name!r}")
    if name in _SWITCH_CHOICES:
        value = str(value)
        if value not in _SWITCH_CHOICES[name]:
            raise ValueError(f"switch {name} must be one of {_SWITCH_CHOICES[name]}")
    elif name in _BOOL_SWITCHES:
        value = _as_bool(value)
    elif name == "rate_limit_per_minute":
        value = int(value)
        if value < 0:
            raise ValueError("rate_limit_per_minute must be >= 0 (0: no limit)")
    elif name == "webhook_retry_schedule":
        value = [float(v) for v in value]
        if any(v < 0 for v in value):
            raise ValueError("webhook_retry_schedule delays must be >= 0")
    elif name in _INT_SWITCHES:
        value = int(value)
        if value < 1:
            raise ValueError(f"switch {name} must be at least 1")
    else:
        value = float(value)
        if value < 0 or (value == 0 and name == "rate_limit_window_seconds"):
            raise ValueError(f"switch {name} must be >= 0 (a window > 0)")
    return value
