"""``verify_pleo_contract --company UUID [--json]``: check one company's Pleo against Pleo's
published contract and our readings of it, with read-only calls.

Exit 0 when everything checked matched, 1 when anything did not (or the check could not run:
credential refused or unusable, request budget spent), 2 on a usage error or an unknown company
(as ``check_exports``). What is called and checked: ``exports/services/contract.py``.
"""

import json
import uuid

from django.core.management.base import BaseCommand, CommandError

from exports.models import Company
from exports.services.contract import pleo_contract_verify

LABELS = {"match": "match", "mismatch": "MISMATCH", "skipped": "skipped"}


class Command(BaseCommand):
    service = "Pleo"  # in the lines printed; verify_xero_contract is this command for Xero
    help = (
        "Check what Pleo answers for one company against Pleo's OpenAPI files "
        "(docs/pleo-openapi/) and the product's readings of them: job and item statuses and "
        "failure types, error-type case, pagination, the subscriptions' eventTypes, receipt "
        "hosts. Read-only: only GET requests, through the company's stored credential. "
        "Exit 0: all matched; 1: something did not (or the check could not run); 2: usage error."
    )

    def add_arguments(self, parser):
        parser.add_argument("--company", required=True, metavar="UUID", help="Pleo company id.")
        parser.add_argument("--json", action="store_true", help="One JSON object.")

    def handle(self, *args, **options):
        company = self._company(options["company"])
        report = self.verify(company)
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict()))
        else:
            self._print(report)
        if not report.ok:
            raise CommandError(
                f"{self.service}'s answers differ from what we rely on.", returncode=1
            )

    def verify(self, company: Company):
        return pleo_contract_verify(company=company)

    def _print(self, report) -> None:
        company = report.company
        self.stdout.write(
            f"{self.service} contract check for {company.name} (company {company.pleo_company_id}) "
            f"at {report.base_url}"
        )
        width = max((len(f.check) for f in report.findings), default=0)
        for finding in report.findings:
            label = LABELS[finding.status.value]
            self.stdout.write(f"  {label:<8}  {finding.check:<{width}}  {finding.detail}")
        if report.stopped:
            self.stdout.write(f"  STOPPED   {report.stopped}")
        counts = report.counts()
        methods = ", ".join(sorted({r.split(" ", 1)[0] for r in report.requests})) or "none"
        self.stdout.write(
            f"{counts['match']} matched, {counts['mismatch']} did not, {counts['skipped']} "
            f"skipped; {len(report.requests)} requests ({methods})."
        )

    def _company(self, value: str) -> Company:
        try:
            pleo_id = uuid.UUID(value)
        except ValueError:
            raise CommandError(f"--company: '{value}' is not a UUID.", returncode=2)
        company = (
            Company.objects.filter(pleo_company_id=pleo_id).select_related("credential").first()
        )
        if company is None:
            raise CommandError(f"--company: unknown company {pleo_id}.", returncode=2)
        return company
