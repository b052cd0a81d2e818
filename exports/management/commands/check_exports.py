"""``check_exports``: run the detect-and-start flow now, in the foreground.

Same service the worker uses. Exit 0 when no company failed, 1 when any did (outcome ``failed``,
``failed_job`` or ``job_expired``), 2 on a usage error.
An unexpected exception in one company's run is that company's ``failed`` line; the others run.
A run deferred by the request budget (or ``MAX_CONCURRENT_COMPANIES``) is waited for, at most
``--wait`` seconds in all, without holding the company's lease; past that it reports ``deferred``.
"""

import json
import signal
import time
import uuid

from django.core.management.base import BaseCommand, CommandError

from exports import clock
from exports.models import Company, Trigger
from exports.services.company_guard import company_check_guarded
from exports.services.runs import Outcome
from exports.services.start_flow import company_check_run


def _terminate(signum, frame):
    # Leases are released in `finally`: turn SIGTERM into an exception that unwinds to them.
    raise SystemExit(128 + signum)


class Command(BaseCommand):
    help = (
        "Run the export check now for the named companies (or all active ones): detect and "
        "start (or resume) the oldest job, then carry it through validation, booking and item "
        "reports to its final event. Outcomes: completed, completed_with_errors, failed_job "
        "(a job of ours failed: we sent 'failed' because validation failed or every item "
        "failed, or Pleo failed it or no longer finds it; exit code 1), job_expired (Pleo "
        "expired a job of ours before it was finished: ask the bookkeeper to export again; "
        "exit code 1), finished_elsewhere (a job we worked on was completed in Pleo by someone "
        "else), started/resumed (the job is left in progress for the next run; the error says "
        "why), nothing_pending, busy, owned_elsewhere, unknown_status (a job of ours is in a "
        "status we do not know: the company is held until it is known or released), conflict, "
        "expired_skipped, deferred (the request budget is spent or too many companies run; "
        "waited for up to --wait seconds, then left to the worker), failed (the run itself "
        "failed; exit code 1)."
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
        parser.add_argument(
            "--wait",
            type=float,
            default=60.0,
            metavar="SECONDS",
            help="How long in all to wait for the request budget when a run is deferred "
            "(default 60; 0 reports 'deferred' at once).",
        )

    def handle(self, *args, **options):
        companies = self._companies(options["company"])
        signal.signal(signal.SIGTERM, _terminate)
        failed = 0
        wait_until = time.monotonic() + max(0.0, options["wait"])
        for company in companies:
            result = self._run(company, options["recover"], wait_until)
            if result.outcome in Outcome.FAILURES:
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

    def _run(self, company: Company, recover: bool, wait_until: float):
        """Run the flow; while deferred and the wait allows, sleep (no lease held) and again."""
        while True:
            # Guarded: whatever this company raises is its own failed outcome; the next runs.
            result = company_check_guarded(
                company=company,
                trigger=Trigger.COMMAND_LINE,
                recover=recover,
                check=company_check_run,
            )
            if result.outcome != Outcome.DEFERRED or result.not_before is None:
                return result
            pause = max(0.05, (result.not_before - clock.now()).total_seconds())
            if time.monotonic() + pause > wait_until:
                return result
            time.sleep(pause)

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
