"""``reconcile --company UUID --from DATE --to DATE [--json]``: match what this bridge reported
successful to Pleo (jobs it claimed in the period) against the ledger, and Pleo's view against
ours (``exports/services/reconciliation.py``). Bookings made before the adapter read back
(``present_not_compared``) are counted, not flagged. Exit 0 when nothing is flagged, 1 when
anything is, 2 on a usage error.
"""

import json
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from exports.management.company_arg import add_company_arguments, company_by_pleo_id, parsed
from exports.services.reconciliation import NOT_COMPARED, reconciliation_report


def _date(value: str) -> date:
    return parsed(date.fromisoformat, value, "'{value}' is not a date (YYYY-MM-DD).")


class Command(BaseCommand):
    help = (
        "Reconcile one company's exports for a period against the ledger: bookings missing, "
        "changed or twice in the ledger, and items Pleo holds as exported that we have no "
        "record of. Exit 0: nothing flagged; 1: something is; 2: usage error."
    )

    def add_arguments(self, parser):
        add_company_arguments(parser)
        parser.add_argument("--from", dest="date_from", required=True, metavar="DATE")
        parser.add_argument("--to", dest="date_to", required=True, metavar="DATE")

    def handle(self, *args, **options):
        company = company_by_pleo_id(options["company"])
        date_from, date_to = _date(options["date_from"]), _date(options["date_to"])
        if date_to < date_from:
            raise CommandError("--to is before --from.", returncode=2)
        report = reconciliation_report(company=company, date_from=date_from, date_to=date_to)
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict()))
        else:
            self.stdout.write(
                f"Reconciliation of {company.name}, {date_from} to {date_to}: {report.jobs} "
                f"job(s), {len(report.rows)} row(s)"
            )
            totals = ", ".join(f"{k}: {v}" for k, v in report.totals().items() if v)
            self.stdout.write(f"  {totals or 'nothing to reconcile'}")
            if report.not_compared:
                self.stdout.write(f"  {report.not_compared} {NOT_COMPARED}")
            for row in report.flagged:
                self.stdout.write(
                    f"  {row.status.upper():<16} {row.accounting_entry_id or '-'}  "
                    f"{row.external_id or '-'}  {row.detail}"
                )
        if not report.ok:
            raise CommandError(f"{len(report.flagged)} row(s) flagged.", returncode=1)
