"""``--company UUID`` of the commands that work on one company: its Pleo company id; and
:func:`parsed`, an option's value read or a usage error (exit 2)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

from django.core.management.base import CommandError

from exports.models import Company

T = TypeVar("T")


def parsed(parse: Callable[[str], T], value: str, message: str) -> T:
    """``parse(value)``; a ``ValueError`` is a usage error (exit 2) saying ``message``, with
    ``{value}`` replaced by the value."""
    try:
        return parse(value)
    except ValueError:
        raise CommandError(message.format(value=value), returncode=2) from None


def add_company_arguments(parser) -> None:
    """``--company UUID`` (required) and ``--json``."""
    parser.add_argument("--company", required=True, metavar="UUID", help="Pleo company id.")
    parser.add_argument("--json", action="store_true", help="One JSON object.")


def company_by_pleo_id(value: str) -> Company:
    """The company with Pleo company id ``value``; exit 2 when not a UUID or unknown."""
    pleo_id = parsed(uuid.UUID, value, "--company: '{value}' is not a UUID.")
    company = Company.objects.filter(pleo_company_id=pleo_id).select_related("credential").first()
    if company is None:
        raise CommandError(f"--company: unknown company {pleo_id}.", returncode=2)
    return company
