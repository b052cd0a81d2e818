"""``--company UUID`` of the commands that work on one company: its Pleo company id."""

from __future__ import annotations

import uuid

from django.core.management.base import CommandError

from exports.models import Company


def add_company_arguments(parser) -> None:
    """``--company UUID`` (required) and ``--json``."""
    parser.add_argument("--company", required=True, metavar="UUID", help="Pleo company id.")
    parser.add_argument("--json", action="store_true", help="One JSON object.")


def company_by_pleo_id(value: str) -> Company:
    """The company with Pleo company id ``value``; exit 2 when not a UUID or unknown."""
    try:
        pleo_id = uuid.UUID(value)
    except ValueError:
        raise CommandError(f"--company: '{value}' is not a UUID.", returncode=2)
    company = Company.objects.filter(pleo_company_id=pleo_id).select_related("credential").first()
    if company is None:
        raise CommandError(f"--company: unknown company {pleo_id}.", returncode=2)
    return company
