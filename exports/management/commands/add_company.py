"""``add_company``: create or update (by Pleo company id) an active company with an API key."""

import json
import uuid

from django.core.management.base import BaseCommand, CommandError

from exports.management.company_arg import parsed
from exports.services.companies import (
    company_add_or_update,
    company_input_problems,
    webhook_endpoint_url,
)

OPTIONS = {
    "name": "--name",
    "api_key": "--api-key",
    "api_base_url": "--api-base-url",
    "webhook_secret": "--webhook-secret",
}


class Command(BaseCommand):
    help = (
        "Create or update (by Pleo company id) an active company with its own API-key credential "
        "and webhook endpoint. Prints the company id, webhook_path and webhook_url."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="Display name.")
        parser.add_argument("--pleo-company-id", required=True, help="Pleo company id (UUID).")
        parser.add_argument("--api-key", required=True, help="Pleo API key (stored encrypted).")
        parser.add_argument(
            "--api-base-url",
            default="",
            help="Override PLEO_API_BASE_URL (a Pleo host of PLEO_ALLOWED_HOSTS, https).",
        )
        parser.add_argument(
            "--webhook-secret", default="", help="Add this whsec_… secret to the endpoint."
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, **options):
        pleo_company_id = parsed(
            uuid.UUID, options["pleo_company_id"], "--pleo-company-id: '{value}' is not a UUID."
        )
        values = {
            "name": options["name"].strip(),
            "api_key": options["api_key"].strip(),
            "api_base_url": options["api_base_url"].strip(),
            "webhook_secret": options["webhook_secret"].strip(),
        }
        # Refused here, before anything is written: a clear line per option and exit 2, not a
        # database error (PostgreSQL) or a value stored that fails later (SQLite, the worker).
        problems = company_input_problems(**values)
        if problems:
            raise CommandError(
                "\n".join(
                    f"{OPTIONS[argument]}: {message}"
                    for argument, messages in problems.items()
                    for message in messages
                ),
                returncode=2,
            )
        saved = company_add_or_update(pleo_company_id=pleo_company_id, **values)
        payload = {
            "id": saved.company.pk,
            "pleo_company_id": str(saved.company.pleo_company_id),
            "name": saved.company.name,
            "created": saved.created,
            "webhook_path": saved.endpoint.path,
            "webhook_url": webhook_endpoint_url(endpoint=saved.endpoint),
        }
        if options["json"]:
            self.stdout.write(json.dumps(payload))
            return
        verb = "Created" if saved.created else "Updated"
        self.stdout.write(f"{verb} company {payload['name']} (id {payload['id']})")
        self.stdout.write(f"webhook_path: {payload['webhook_path']}")
        self.stdout.write(f"webhook_url: {payload['webhook_url']}")
