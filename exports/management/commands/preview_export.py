"""``preview_export --company UUID [--job UUID] [--json]``: a dry run of the company's oldest
pending export job (or the one named): which items would fail, why and where to fix it.

Nothing is booked or sent to Pleo; read-only calls through the company's credential and request
budget (``exports/services/preview.py``). Exit 0 when every item would pass (or nothing is
pending), 1 when something would fail or the preview is unavailable, 2 on a usage error.
"""

import json
import uuid

from django.core.management.base import BaseCommand, CommandError

from exports.management.company_arg import add_company_arguments, company_by_pleo_id
from exports.services.preview import PreviewStatus, job_preview


class Command(BaseCommand):
    help = (
        "Preview (dry run) a pending export job: run the accounting adapter's validation and "
        "per-item checks on its items without starting it. Exit 0: every item would pass; 1: "
        "some would fail (or the preview is unavailable); 2: usage error."
    )

    def add_arguments(self, parser):
        add_company_arguments(parser)
        parser.add_argument("--job", metavar="UUID", help="Pleo job id (default: oldest pending).")

    def handle(self, *args, **options):
        company = company_by_pleo_id(options["company"])
        job_id = options.get("job")
        if job_id is not None:
            try:
                job_id = uuid.UUID(job_id)
            except ValueError:
                raise CommandError(f"--job: '{job_id}' is not a UUID.", returncode=2)
        report = job_preview(company=company, pleo_job_id=job_id)
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict()))
        else:
            self._print(report)
        if not report.ok:
            raise CommandError(f"Preview: {report.status}.", returncode=1)

    def _print(self, report) -> None:
        self.stdout.write(
            f"Preview of {report.company.name}: {report.status}"
            + (f" (job {report.pleo_job_id})" if report.pleo_job_id else "")
        )
        if report.reason:
            self.stdout.write(f"  {report.reason}")
        if report.validation is not None and not report.validation.ok:
            self.stdout.write(
                f"  JOB FAILS  {report.validation.failure_type}: {report.validation.message}"
            )
        for item in report.items:
            if item.ok:
                self.stdout.write(f"  ok         {item.accounting_entry_id}  {item.amount}")
            else:
                self.stdout.write(
                    f"  FAILS      {item.accounting_entry_id}  {item.failure_type}: "
                    f"{item.message} Fix in: {item.fix_where}."
                )
        if report.status in (PreviewStatus.PASSES, PreviewStatus.FAILS):
            self.stdout.write(
                f"{len(report.items) - len(report.failing)} of {len(report.items)} items would "
                f"pass; {report.skipped_final} already final."
            )
