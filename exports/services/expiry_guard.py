"""The export lifecycle's guard against Pleo's expiry (``expiresIn``).

Pleo expires a job ``expiresIn`` seconds after its last action (``lastUpdatedAt``). The
lifecycle reports the items it has ready once half of that window has passed since our last
update, assuming that a ``PUT`` of item results refreshes ``lastUpdatedAt``. Pleo does not say
so. So after each such early report the job is read again (one GET) and the deadline Pleo now
reports is audited:

* it moved: the report refreshed the job; the lifecycle goes on as before;
* it did not: the refresh is not trusted for the rest of the run. Our deadline stays the old
  one (later reports do not move it, and there are no more early reports: they would not help),
  and before each further item the lifecycle checks that the item, at the pace of the slowest one
  so far, still ends a safety margin before that deadline. The first item that would not is not
  booked: it and every item after it are reported failed ("export it again"), and the job is
  finished (``completed_with_errors``, or ``failed`` when nothing was exported) before Pleo
  expires it, instead of expiring with booked items Pleo never heard of.

:class:`DeadlineGuard` is a mixin of the lifecycle's ``_Carrier``: it uses the carrier's
``job``, ``touched`` (our last update Pleo saw) and ``audit``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings

from exports import clock, pleo
from exports.adapters import BookingResult
from exports.audit import HttpCall
from exports.models import AuditEntry, AuditStep

# Finish this share of expiresIn (plus the clock-skew allowance) before a deadline that Pleo did
# not extend: room for the last reports and the final event, with their retries.
FINISH_MARGIN_SHARE = 0.1


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def job_pleo_deadline(*, job: pleo.ExportJob) -> datetime | None:
    """The deadline Pleo reports: ``lastUpdatedAt`` plus ``expiresIn`` (None without one)."""
    if job.last_updated_at is None:
        return None
    return job.last_updated_at + timedelta(seconds=job.expires_in)


class DeadlineGuard:
    # Set when an early report did not move Pleo's deadline: the deadline kept from then on.
    deadline_fixed: datetime | None = None
    # How long the slowest item of this run took to decide (seconds), to pace the guard.
    slowest_item: float = 0.0
    # Items reported failed by the guard instead of being booked.
    given_up: int = 0

    def deadline(self) -> datetime:
        """Our deadline: the fixed one, else ``touched`` plus ``expiresIn``."""
        if self.deadline_fixed is not None:
            return self.deadline_fixed
        return self.touched + timedelta(seconds=self.job.expires_in)

    def mark_touched(self) -> None:
        """Pleo accepted an update of ours: it refreshes the job, unless we know it does not."""
        if self.deadline_fixed is None:
            self.touched = clock.now()

    def note_refresh(self, before: datetime, remote: pleo.ExportJob) -> None:
        """Audit the deadline Pleo reports after an early report (``before``: ours before it)."""
        after = job_pleo_deadline(job=remote)
        if after is not None and after > before:
            # Never later than our own reckoning: our clock or Pleo's may be off.
            self.touched = min(self.touched, after - timedelta(seconds=remote.expires_in))
            self.audit(
                AuditStep.DEADLINE_CHECKED,
                f"After the early report Pleo expires the job at {_utc(after)} (before it: "
                f"{_utc(before)}): reporting item results refreshed the job.",
                outcome=AuditEntry.Outcome.INFO,
                http=self.job_read_http(),
            )
            return
        self.deadline_fixed = before if after is None else min(before, after)
        self.touched = self.deadline_fixed - timedelta(seconds=self.job.expires_in)
        if after is None:
            seen = (
                "Pleo reports no lastUpdatedAt for the job: whether reporting item results moved "
                "its deadline cannot be told."
            )
        else:
            seen = (
                f"Pleo still expires the job at {_utc(after)}: reporting item results did not "
                f"move its deadline."
            )
        self.audit(
            AuditStep.DEADLINE_NOT_REFRESHED,
            f"After the early report {seen} The refresh is not trusted: the job is finished "
            f"before {_utc(self.deadline_fixed)}, and items that cannot be booked in time are "
            f"reported failed, to be exported again.",
            outcome=AuditEntry.Outcome.WARNING,
            http=self.job_read_http(),
        )

    def job_read_http(self) -> HttpCall:
        return HttpCall(method="GET", path=f"/v3/export-jobs/{self.job.pleo_job_id}", status=200)

    def must_stop_booking(self) -> bool:
        """True when the next item, at the slowest pace so far, would not end a safety margin
        before a deadline that Pleo did not extend."""
        if self.deadline_fixed is None:
            return False
        margin = self.job.expires_in * FINISH_MARGIN_SHARE + settings.EXPIRY_CLOCK_SKEW_SECONDS
        needed = timedelta(seconds=self.slowest_item + margin)
        return clock.now() + needed >= self.deadline_fixed

    def timed_out_result(self) -> BookingResult:
        self.given_up += 1
        assert self.deadline_fixed is not None
        return BookingResult.failure(
            pleo.ItemFailureReasonType.UNEXPECTED_FAILURE,
            f"Not exported: Pleo expires this export job at {_utc(self.deadline_fixed)} and did "
            f"not extend it, so the job was finished before then without this item. Nothing was "
            f"booked for it: export it again from Pleo.",
        )

    def note_given_up(self) -> None:
        if not self.given_up:
            return
        assert self.deadline_fixed is not None
        count = f"{self.given_up} item" + ("" if self.given_up == 1 else "s")
        self.audit(
            AuditStep.DEADLINE_GUARD,
            f"{count} not booked: Pleo expires the job at {_utc(self.deadline_fixed)} and did not "
            f"extend it. They are reported failed (export them again from Pleo) so that the job "
            f"is finished in time.",
            outcome=AuditEntry.Outcome.WARNING,
        )
