"""Reading the fields of an API request body or query: a mistake is Pleo's 400 ``BAD_REQUEST``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pleo_sandbox.errors import ApiError


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BAD_REQUEST", message)


def uuid_field(value: Any, name: str) -> str:
    """``value`` as a canonical UUID string."""
    if not isinstance(value, str):
        raise bad_request(f"'{name}' must be a UUID string.")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise bad_request(f"'{name}' is not a valid UUID.")


def optional_str(body: Mapping, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"'{name}' must be a string.")
    return value


def enum_field(value: Any, allowed: Sequence[str], name: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise bad_request(f"'{name}' must be one of {', '.join(allowed)}.")
    return value
