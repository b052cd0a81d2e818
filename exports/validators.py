"""Rules for what operators type in, shared by the admin forms and the management commands.

Each raises Django's ``ValidationError`` with a message for the operator (never a secret). Lengths
come from the model fields, so a rule cannot drift from the column it protects.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from exports import webhook_signing
from exports.pleo import hosts


def max_length_of(model: type[models.Model], field_name: str) -> int | None:
    return model._meta.get_field(field_name).max_length


def validate_not_empty(value: str, *, label: str = "This value") -> None:
    if not value or not value.strip():
        raise ValidationError(f"{label} must not be empty.", code="required")


def validate_max_length(
    value: str, *, model: type[models.Model], field_name: str, label: str = "This value"
) -> None:
    """At most the column's ``max_length`` (PostgreSQL refuses more; SQLite would store it)."""
    limit = max_length_of(model, field_name)
    if limit is not None and len(value) > limit:
        raise ValidationError(
            f"{label} is {len(value)} characters long; at most {limit} are allowed.",
            code="max_length",
        )


def validate_pleo_base_url(value: str, *, label: str = "This URL") -> None:
    """A base URL Pleo credentials may be sent to (:mod:`exports.pleo.hosts`); blank passes."""
    if not value:
        return
    problem = hosts.policy_from_settings().problem(value)
    if problem:
        raise ValidationError(f"{label} is refused: {problem}.", code="pleo_host")


def validate_webhook_secret(value: str, *, label: str = "The webhook secret") -> None:
    """``whsec_`` followed by non-empty base64, as Pleo hands them out (else every delivery
    would be refused with ``no_secret``); blank passes."""
    if not value:
        return
    if not value.startswith(webhook_signing.SECRET_PREFIX):
        raise ValidationError(f"{label} must start with whsec_.", code="webhook_secret")
    try:
        webhook_signing.secret_key(value)
    except webhook_signing.InvalidSecret:
        raise ValidationError(
            f"{label} must be whsec_ followed by base64 (as Pleo shows it), nothing else.",
            code="webhook_secret",
        ) from None


def validate_secret_text(value: str, *, label: str = "The secret") -> None:
    """An API key or client secret: no whitespace or control characters inside (a pasted line
    break or tab would only ever be refused by Pleo); blank passes."""
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValidationError(
            f"{label} must not contain spaces, line breaks or control characters.",
            code="secret_text",
        )


def messages_of(error: ValidationError) -> list[str]:
    return [str(message) for message in error.messages]
