"""Comma-separated email address lists: the integrator's (``NOTIFY_EMAILS``) and a company's."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.core.validators import validate_email


def split_addresses(value: str | Iterable[str] | None) -> list[str]:
    """``"a@x.dk, b@y.se"`` (or a list of such strings) as a list, blanks dropped, order kept."""
    if not value:
        return []
    parts = [value] if isinstance(value, str) else list(value)
    addresses: list[str] = []
    for part in parts:
        for address in str(part).replace(";", ",").split(","):
            address = address.strip()
            if address and address.lower() not in {a.lower() for a in addresses}:
                addresses.append(address)
    return addresses


def invalid_addresses(value: str | Iterable[str] | None) -> list[str]:
    bad = []
    for address in split_addresses(value):
        try:
            validate_email(address)
        except ValidationError:
            bad.append(address)
    return bad


def validate_email_list(value: str) -> None:
    """Model field validator: every comma-separated entry is an email address."""
    bad = invalid_addresses(value)
    if bad:
        raise ValidationError(
            "Not an email address: %(bad)s. Separate addresses with commas.",
            code="invalid_email_list",
            params={"bad": ", ".join(bad)},
        )
