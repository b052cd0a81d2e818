"""``check_exports``: run the detect-and-start flow now, in the foreground.

Same service the worker uses. Exit 0 when no company failed, 1 when any did, 2 on a usage error.
"""

import json
import signal
import uuid

from django.core.management.base import BaseCommand, CommandError

from exports.models import Company, Trigger
from exports.services.start_flow import Outcome, run_export_check


def _terminate(signum, frame):
    # Leases are released in `finally`: turn SIGTERM into an exception that unwinds to them.
    raise SystemExit(128 + signum)


class Command(BaseCommand):
    help = (
        "Run the export check now for the named companies (or all active ones): detect and "
        "start (or resume) the oldest job, then carry it through validation, booking and item "
        "reports to its final event. Outcomes: completed, completed_with_errors, failed_job "
        "(we sent 'failed': validation failed or every item failed), finished_elsewhere (the "
        "job finished or expired under us), started/resumed (the job is left in progress for "
        "the next run), nothing_pending, busy, owned_elsewhere, conflict, expired_skipped, "
        "failed (the run itself failed; exit code 1)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--company",
            action="append",
            default=[],
            metavar="UUID",
            help="Pleo company id; repeat for several. Default: every active company.",
        )
        parser.add_argument(
            "--recover",
            action="store_true",
            help="Also re-read every unfinished claim of ours and resume it.",
        )
        parser.add_argument("--json", action="store_true", help="One JSON object per line.")

    def handle(self, *args, **options):
        companies = self._companies(options["company"])
        signal.signal(signal.SIGTERM, _terminate)
        failed = 0
        for company in companies:
            result = run_export_check(
                company=company, trigger=Trigger.COMMAND_LINE, recover=options["recover"]
            )
            if result.outcome == Outcome.FAILED:
                failed += 1
            if options["json"]:
                self.stdout.write(json.dumps(result.as_dict()))
            else:
                job = f" job {result.job_id}" if result.job_id else ""
                error = f": {result.error}" if result.error else ""
                self.stdout.write(f"{company.name}: {result.outcome}{job}{error}")
            for hint in result.hints:
                self.stderr.write(f"hint: {hint}")
        if not companies and not options["json"]:
            self.stdout.write("No active companies.")
        if failed:
            raise CommandError(f"{failed} of {len(companies)} companies failed.", returncode=1)

    def _companies(self, wanted: list[str]) -> list[Company]:
        if not wanted:
            return list(Company.objects.filter(active=True).select_related("credential"))
        ids = []
        for value in wanted:
            try:
                ids.append(uuid.UUID(value))
            except ValueError:
                raise CommandError(f"--company: '{value}' is not a UUID.", returncode=2)
        found = {
            c.pleo_company_id: c
            for c in Company.objects.filter(pleo_company_id__in=ids).select_related("credential")
        }
        unknown = [str(i) for i in ids if i not in found]
        if unknown:
            raise CommandError(f"--company: unknown company {', '.join(unknown)}.", returncode=2)
        return [found[i] for i in dict.fromkeys(ids)]
