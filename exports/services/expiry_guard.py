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

Before booking (in every run, a resumed one too), an adapter behind request limits (Xero)
estimates the calls the items still to book need (``estimate_calls``) and the room its budgets
leave until the deadline less the same safety margin (``call_room``): :meth:`plan_calls`.

* All fit: one ``calls_estimated`` INFO line (the estimate, the budgets, the deadline).
* Not all: only the items whose calls fit, from the first, are booked; every item after them is
  reported failed ``accounting_system_rate_limit`` ("export it again": nothing was booked for
  it), and the job is finished as above, before Pleo expires it: Pleo's contract finishes a job
  only once every item is final (``docs/pleo-export-api.md`` §7), and an item failed is one the
  bookkeeper exports again. One ``calls_estimated`` WARNING says why; the job's admin page
  shows it.
* The day's budget (not waited for inside a run) cannot take the first item's calls at once:
  the run is deferred (``BudgetExhausted``) until it can, as a spent day budget defers it.
* An early report that moved Pleo's deadline sets ``replan``: the items not booked yet are
  planned again against the new deadline (those left out may fit now).

:class:`DeadlineGuard` is a mixin of the lifecycle's ``_Carrier``: it uses the carrier's
``job``, ``touched`` (our last update Pleo saw) and ``audit``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from exports import clock, pleo
from exports.adapters import AdapterUnavailable, BookingRequest, BookingResult
from exports.audit import HttpCall
from exports.models import AuditEntry, AuditStep
from exports.services.lifecycle_common import Pause, plural
from exports.timestamps import utc_text

# Finish this share of expiresIn (plus the clock-skew allowance) before a deadline that Pleo did
# not extend: room for the last reports and the final event, with their retries.
FINISH_MARGIN_SHARE = 0.1


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
    # Items left for re-export because their calls do not fit before the deadline (plan_calls),
    # the deadline they were measured against, and whether to plan again (Pleo moved it).
    cut_entries: frozenset = frozenset()
    cut_deadline: datetime | None = None
    replan: bool = False

    def finish_margin(self) -> timedelta:
        """Room kept before the deadline for the last reports and the final event."""
        share = self.job.expires_in * FINISH_MARGIN_SHARE
        return timedelta(seconds=share + settings.EXPIRY_CLOCK_SKEW_SECONDS)

    def plan_calls(self, to_book: list[tuple], *, first_alone: bool) -> None:
        """Before booking: the adapter's calls for ``to_book`` (``(entry id, BookingRequest)``
        in booking order) against its budgets and the deadline (module docstring)."""
        adapter = self.adapter
        requests: list[BookingRequest] = [request for _, request in to_book]
        deadline = self.deadline()
        until = deadline - self.finish_margin()
        seconds = max((until - clock.now()).total_seconds(), 0.0)
        try:
            # The room first: the estimate may make its first call (Xero: the organisation).
            room = adapter.call_room(seconds=seconds) if requests else None
            if room is None:
                return
            estimate = adapter.estimate_calls(requests, first_alone=first_alone)
            if estimate is None:
                return
            first = next((calls for calls in estimate.item_calls if calls), 0)
            ready_at = adapter.call_room(seconds=seconds, at_once=first).ready_at
        except AdapterUnavailable as exc:
            raise Pause(f"{adapter.label} is unreachable ({exc}); nothing was booked.") from None
        except pleo.BudgetExhausted as exc:
            self.client.budget_exhausted = exc
            raise
        if room.now < first:
            exc = pleo.BudgetExhausted(
                f"{adapter.label}'s day budget grants {room.now} calls now and the first item "
                f"to book needs {first}; room again at {ready_at:%H:%M:%S} UTC",
                retry_at=ready_at,
            )
            self.client.budget_exhausted = exc
            raise exc
        fits = estimate.items_within(room.calls) if seconds > 0 else 0
        text = (
            f"{adapter.label} calls for the {plural(len(requests), 'item')} to book: "
            f"{estimate.describe()}. Budgets: {room.description}. Pleo expires the job at "
            f"{utc_text(deadline)}; booking must end by {utc_text(until)} (the safety margin), "
            f"room for {room.calls if seconds > 0 else 0} calls until then."
        )
        if fits == len(requests):
            self.cut_entries = frozenset()
            self.audit(
                AuditStep.CALLS_ESTIMATED, f"{text} All fit.", outcome=AuditEntry.Outcome.INFO
            )
            return
        self.cut_entries = frozenset(entry for entry, _ in to_book[fits:])
        self.cut_deadline = deadline
        self.audit(
            AuditStep.CALLS_ESTIMATED,
            f"{text} Only the first {plural(fits, 'item')} fit: "
            f"{len(self.cut_entries)} left for re-export (reported failed, nothing booked for "
            f"them) so that the job is finished before Pleo expires it.",
            outcome=AuditEntry.Outcome.WARNING,
        )

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
            self.replan = bool(self.cut_entries)  # the items left out may fit now
            self.audit(
                AuditStep.DEADLINE_CHECKED,
                f"After the early report Pleo expires the job at {utc_text(after)} (before it: "
                f"{utc_text(before)}): reporting item results refreshed the job.",
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
                f"Pleo still expires the job at {utc_text(after)}: reporting item results did not "
                f"move its deadline."
            )
        self.audit(
            AuditStep.DEADLINE_NOT_REFRESHED,
            f"After the early report {seen} The refresh is not trusted: the job is finished "
            f"before {utc_text(self.deadline_fixed)}, and items that cannot be booked in time are "
            f"reported failed, to be exported again.",
            outcome=AuditEntry.Outcome.WARNING,
            http=self.job_read_http(),
        )

    def job_read_http(self) -> HttpCall:
        return HttpCall(method="GET", path=f"/v3/export-jobs/{self.job.pleo_job_id}", status=200)

    def must_stop_booking(self, entry_id=None) -> bool:
        """True for an item left for re-export by :meth:`plan_calls`, or when the next item, at
        the slowest pace so far, would not end a safety margin before a deadline that Pleo did
        not extend."""
        if entry_id in self.cut_entries:
            return True
        if self.deadline_fixed is None:
            return False
        needed = timedelta(seconds=self.slowest_item) + self.finish_margin()
        return clock.now() + needed >= self.deadline_fixed

    def timed_out_result(self, entry_id=None) -> BookingResult:
        self.given_up += 1
        if entry_id in self.cut_entries:
            return BookingResult.failure(
                pleo.ItemFailureReasonType.ACCOUNTING_SYSTEM_RATE_LIMIT,
                f"Not exported: the calls to {self.adapter.label} this item needs did not fit "
                f"within its request limits before Pleo expires this export job at "
                f"{utc_text(self.cut_deadline)}, so the job was finished without it. Nothing was "
                f"booked for it: export it again from Pleo.",
            )
        assert self.deadline_fixed is not None
        return BookingResult.failure(
            pleo.ItemFailureReasonType.UNEXPECTED_FAILURE,
            f"Not exported: Pleo expires this export job at {utc_text(self.deadline_fixed)} and "
            f"did not extend it, so the job was finished before then without this item. Nothing "
            f"was booked for it: export it again from Pleo.",
        )

    def note_given_up(self) -> None:
        if not self.given_up:
            return
        count = f"{self.given_up} item" + ("" if self.given_up == 1 else "s")
        if self.deadline_fixed is None:  # all of them left by plan_calls
            self.audit(
                AuditStep.DEADLINE_GUARD,
                f"{count} not booked: their {self.adapter.label} calls did not fit before Pleo "
                f"expires the job at {utc_text(self.cut_deadline)}. They are reported failed "
                f"(export them again from Pleo) so that the job is finished in time.",
                outcome=AuditEntry.Outcome.WARNING,
            )
            return
        self.audit(
            AuditStep.DEADLINE_GUARD,
            f"{count} not booked: Pleo expires the job at {utc_text(self.deadline_fixed)} and did "
            f"not extend it. They are reported failed (export them again from Pleo) so that the "
            f"job is finished in time.",
            outcome=AuditEntry.Outcome.WARNING,
        )
