"""The export lifecycle: carry a job we started (or resumed) to its end, in the same run.

Pleo's how-to steps 2-7 (``docs/pleo-export-api.md`` §1, §3.6-3.8, §7), under the company's lease,
renewed as the run goes. ``ExportJob.processing_state`` shows where a job stands:

``validating``  pre-export validation by the company's accounting adapter
                (``exports.adapters``). On failure: ``failed`` is sent with the adapter's
                ``failureReason``/``failureReasonType`` and no item is touched.
``items``       every page of the job's items (control layer); only ``pending``/``in_progress``
                items are processed, final ones are skipped (a resumed run starts from what
                Pleo says is unfinished). Then every page of the export items (data layer),
                joined on ``accountingEntryId``.
``reporting``   each open item, in a fixed order (booking date, then id), goes to the adapter at
                most once, in batches: for an adapter that writes locally (the journal), a
                report chunk's entries and our records of them commit in one transaction; for
                any other, the batch's ``ExportItemRecord`` rows are committed as ``booking``
                before the call, and
                a record found ``booking`` later is settled with ``adapter.lookup`` (or, when
                the adapter cannot look up, reported failed ``unexpected_failure`` and never
                booked again). Outcomes are reported with ``PUT …/items`` as soon as a batch of
                ``PLEO_ITEMS_BATCH_SIZE`` (≤100) is ready, or earlier when half of ``expiresIn``
                has passed since our last update (then the job is read again to see whether
                Pleo moved its deadline: ``exports.services.expiry_guard``); a 413 halves the
                batch size for the rest of the run. After an unknown outcome the job's items
                are re-read and only those not final yet are sent again. Per-item ``errors``
                are audited and the item stays unreported.
``finishing``   once every item is final: ``completed``, ``completed_with_errors`` or
                ``failed`` (all items failed), sent once. An unknown outcome is settled by
                re-reading the job (sent again only while it is still ``in_progress``, bounded).
``done``        the job is final in Pleo; its final status is mirrored.

A 422 (``INVALID_EXPORT_JOB_STATUS_CHANGE`` on the final event, ``EXPORT_JOB_STATUS_UNPROCESSABLE``
on items or export items; error types compared in any case) means the job finished or expired
under us: the job is re-read, mirrored and audited, and nothing more is sent. Never a retry loop.
Expired or failed in Pleo is an ERROR with Pleo's reason and what to do (outcome ``job_expired``
or ``failed_job``: ``exports.services.job_end``); completed by someone else is
``finished_elsewhere``.
A re-read that shows a status we do not know stops the run's work on the job (the company is
held: ``exports.services.unknown_status``). Items in a status we do not know are never booked;
they count as not exported.

A transient problem (Pleo unreachable, an unknown outcome that could not be settled, the
accounting system down) stops the run with an audit entry; the job stays ours and in progress,
``work_pending`` is set for the sweep, and the next run resumes from Pleo's view of the items.
Each such stop counts a failed attempt on the job (``exports.services.failing``); the same stop
again is audited again when the error changes or an hour has passed.
A spent request budget (``BudgetExhausted``) stops it the same way, but is no error: the start
flow audits it once, at INFO ("deferred"), with when the company may run again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings

from exports import clock, crashpoints, pleo
from exports.adapters import (
    AccountingAdapter,
    AdapterUnavailable,
    BookingRequest,
    UnknownAdapter,
    ValidationResult,
    get_adapter,
)
from exports.audit import HttpCall
from exports.models import AuditEntry, AuditStep, ExportItemRecord, ExportJob
from exports.notifications import service as notifications
from exports.services import failing
from exports.services.expiry_guard import DeadlineGuard
from exports.services.leases import LeaseLost
from exports.services.lifecycle_common import (
    AT_RISK_SHARE,
    EXPORT_ITEMS_PATH,
    JOB_TYPES,
    OPEN_ITEM,
    PAST_VALIDATION,
    REPORT_AFTER_SHARE,
    Ended,
    FailJob,
    Pause,
    State,
    plural,
)
from exports.services.lifecycle_final import FinalEvent
from exports.services.lifecycle_items import ItemBooking
from exports.services.lifecycle_receipts import ReceiptFetching
from exports.services.lifecycle_reporting import ItemReporting
from exports.services.runs import Outcome, RunContext, error_http, http_call

logger = logging.getLogger(__name__)

T = TypeVar("T")


def job_carry(*, run: RunContext, job: ExportJob, resumed: bool) -> str | None:
    """Carry a job we own on from where it stands.

    Returns ``completed``, ``completed_with_errors``, ``failed_job`` (we sent ``failed``, or Pleo
    failed it under us, or no longer finds it), ``job_expired`` (Pleo expired it under us),
    ``finished_elsewhere`` (completed in Pleo by someone else), or None when the job is left
    unfinished for the next run (then ``run.work_pending`` is set). Why a job stopped or ended
    badly is in ``run.job_errors``.
    """
    carrier = _Carrier(run, job, resumed)
    try:
        return carrier.carry()
    except Ended as ended:
        return ended.outcome
    except Pause as pause:
        return carrier.pause(str(pause), http=pause.http)
    except pleo.BudgetExhausted as exc:
        # Not an error: our own request budget is spent (expected under load). The call was not
        # sent; the start flow defers the company (one INFO "deferred" audit row, with when it
        # may run again) and the next run resumes the job from Pleo's view of the items.
        return carrier.defer(exc)
    except (LeaseLost, pleo.PleoAuthError):
        raise
    except pleo.PleoError as exc:
        return carrier.pause(f"Pleo call failed: {exc}.", http=error_http(exc))


class _Carrier(ItemBooking, ItemReporting, FinalEvent, DeadlineGuard, ReceiptFetching):
    """One job, one run. The stages are here; booking the items (``lifecycle_items``), reporting
    them (``lifecycle_reporting``), the final event (``lifecycle_final``) and fetching the items'
    receipts before they are booked (``lifecycle_receipts``) are mixins."""

    def __init__(self, run: RunContext, job: ExportJob, resumed: bool) -> None:
        self.run = run
        self.job = job
        self.resumed = resumed
        self.client: pleo.PleoClient = run.client
        self.items_path = f"/v3/export-jobs/{job.pleo_job_id}/items"
        self.job_path = f"/v3/export-jobs/{job.pleo_job_id}"
        limit = self.client.config.items_batch_size
        self.batch_size = max(1, min(int(settings.PLEO_ITEMS_BATCH_SIZE), limit))
        # Our last update Pleo saw: ``started`` just now, or what Pleo last recorded.
        if resumed:
            self.touched = job.last_updated_at or job.started_at or job.created_at
        else:
            self.touched = clock.now()
        self.adapter: AccountingAdapter | None = None
        self.statuses: dict[uuid.UUID, pleo.ItemStatus] = {}
        self.failure_types: dict[uuid.UUID, str] = {}
        self.queue: list[ExportItemRecord] = []
        self.at_risk_noted = False
        self.earlier: dict = {}  # items booked before this job booked them (find_earlier)
        self.fetched_receipts = {}
        self.to_book: list = []  # (record, request, booked fields) for the next batch

    # --- the stages ---------------------------------------------------------------------------

    def carry(self) -> str | None:
        self.note_if_at_risk()
        try:
            if self.job.processing_state not in PAST_VALIDATION:
                result = self.validate()
                if not result.ok:
                    raise FailJob(result)
            else:
                try:
                    self.adapter = self.bound_adapter()
                except UnknownAdapter:
                    raise Pause(
                        f"The accounting adapter '{self.run.company.accounting_adapter}' chosen "
                        f"for this company is no longer installed; choose one in the admin."
                    ) from None
            self.set_state(State.ITEMS)
            open_items = self.read_job_items()
            if open_items:
                export_items = self.read_export_items()
                self.set_state(State.REPORTING)
                self.book_and_report(open_items, export_items)
            self.confirm_all_final()
        except FailJob as fail:
            result = fail.result
            return self.send_final(
                pleo.JobEvent.FAILED,
                reason=result.message,
                reason_type=result.failure_type or pleo.JobFailureReasonType.VALIDATION_FAILURE,
            )
        return self.finish()

    def validate(self) -> ValidationResult:
        self.set_state(State.VALIDATING)
        name = self.run.company.accounting_adapter
        try:
            self.adapter = self.bound_adapter()
        except UnknownAdapter:
            result = ValidationResult.failed(
                pleo.JobFailureReasonType.INVALID_CONFIGURATION,
                f"The accounting adapter '{name}' chosen for this company is not installed. "
                f"Choose an installed one in the bridge's admin (Company → Accounting adapter) "
                f"and export again from Pleo.",
            )
        else:
            try:
                result = self.adapter.validate(self.job)
            except AdapterUnavailable as exc:  # asked nothing of the job: it waits
                raise Pause(f"{self.adapter.label} could not be asked before the export ({exc}).")
            except pleo.BudgetExhausted:  # our own budget: nothing sent, the run is deferred
                raise
            except Exception as exc:
                logger.exception("Adapter %s failed to validate", name)
                result = ValidationResult.failed(
                    pleo.JobFailureReasonType.ACCOUNTING_SYSTEM_UNREACHABLE,
                    f"Failed to reach the accounting system to check it ({type(exc).__name__}).",
                )
        if result.ok:
            self.audit(
                AuditStep.VALIDATED, f"Pre-export validation passed. {result.message}".strip()
            )
        else:
            self.audit(
                AuditStep.VALIDATION_FAILED,
                f"Pre-export validation failed ({result.failure_type}): {result.message} "
                f"No item was touched.",
                outcome=AuditEntry.Outcome.ERROR,
            )
        return result

    def bound_adapter(self) -> AccountingAdapter:
        adapter = get_adapter(
            self.run.company.accounting_adapter, company=self.run.company, job=self.job
        )
        if hasattr(adapter, "heartbeat"):  # an adapter that may wait (Xero's budgets)
            adapter.heartbeat = self.run.lease.renew_if_due
        return adapter

    def read_job_items(self) -> list[pleo.ExportJobItem]:
        items = self.pleo_call(
            "reading the job's items",
            lambda: self.client.list_export_job_items(self.job.pleo_job_id),
        )
        self.learn(items)
        open_items = [item for item in items if item.status in OPEN_ITEM]
        unknown = [item for item in items if item.status == pleo.ItemStatus.UNKNOWN]
        done = len(items) - len(open_items) - len(unknown)
        message = f"Read {plural(len(items), 'job item')} from Pleo: {len(open_items)} to export"
        if done:
            message += f", {done} already final (skipped)"
        if unknown:
            raw = ", ".join(sorted({f"'{item.raw_status[:50]}'" for item in unknown}))
            message += (
                f", {len(unknown)} in a status we do not know ({raw}): not booked, counted as "
                f"not exported"
            )
        self.audit(
            AuditStep.ITEMS_READ,
            message + ".",
            outcome=AuditEntry.Outcome.WARNING if unknown else AuditEntry.Outcome.OK,
            http=http_call("GET", self.items_path, 200),
        )
        return open_items

    def read_export_items(self) -> dict[uuid.UUID, pleo.ExportItem]:
        try:
            items = self.pleo_call(
                "reading the export items",
                lambda: self.client.list_export_items(self.job.pleo_job_id),
            )
        except pleo.PleoBadRequest as exc:
            if not exc.has_type(pleo.ErrorType.MISSING_CONTRA_ACCOUNTS):
                raise
            self.audit(
                AuditStep.EXPORT_ITEMS_REFUSED,
                f"Pleo refused the export items: {exc.message}",
                outcome=AuditEntry.Outcome.ERROR,
                http=http_call("GET", EXPORT_ITEMS_PATH, 400),
            )
            raise FailJob(
                ValidationResult.failed(
                    pleo.JobFailureReasonType.MISSING_CONFIGURATION,
                    "Contra accounts are not fully configured in Pleo. Map a contra account for "
                    "every currency in Pleo's accounting settings and export again.",
                )
            ) from None
        by_id = {item.accounting_entry_id: item for item in items}
        self.audit(
            AuditStep.EXPORT_ITEMS_READ,
            f"Read the accounting data of {plural(len(by_id), 'item')} from Pleo.",
            http=http_call("GET", EXPORT_ITEMS_PATH, 200),
        )
        return by_id

    def book_and_report(
        self,
        open_items: list[pleo.ExportJobItem],
        export_items: dict[uuid.UUID, pleo.ExportItem],
    ) -> None:
        def order(item: pleo.ExportJobItem):
            data = export_items.get(item.accounting_entry_id)
            return (data is None, data.date if data else None, str(item.accounting_entry_id))

        ordered = sorted(open_items, key=order)
        records = self.records_for([item.accounting_entry_id for item in ordered])
        self.find_earlier(records)
        # At half of expiresIn already, the first item is reported (so booked) on its own.
        to_book = self.requests_to_book(ordered, records, export_items)
        self.plan_calls(to_book, first_alone=self.half_expired())
        for position, item in enumerate(ordered):
            self.run.lease.renew_if_due()
            if self.replan:  # an early report moved the deadline: plan the rest again
                self.replan = False
                rest = self.requests_to_book(ordered[position:], records, export_items)
                self.plan_calls(rest, first_alone=False)
            record = records[item.accounting_entry_id]
            if self.must_stop_booking(item.accounting_entry_id):
                self.book_pending()
                self.decide_without_booking(record)
            else:
                began = clock.now()
                self.receipts_ready(item.accounting_entry_id, ordered, records, export_items)
                self.decide(record, export_items.get(item.accounting_entry_id))
                took = (clock.now() - began).total_seconds()
                self.slowest_item = max(self.slowest_item, took)
            decided = (ExportItemRecord.State.BOOKED, ExportItemRecord.State.FAILED)
            if record.state in decided and record not in self.queue:
                self.queue.append(record)  # (a batch's records are queued by book_pending)
            if len(self.queue) >= self.batch_size:
                self.flush()
            elif self.half_expired():
                self.book_pending()
                if self.queue:
                    self.audit(
                        AuditStep.REPORT_EARLY,
                        f"Half of the job's expiry window has passed since our last update: "
                        f"reporting the {plural(len(self.queue), 'item')} ready so far so "
                        f"the job does not expire.",
                        outcome=AuditEntry.Outcome.INFO,
                    )
                    before = self.deadline()
                    self.flush()
                    self.check_deadline(before)
                else:
                    self.note_if_at_risk(force=True)
            crashpoints.crash_point("mid_items")
        self.book_pending()
        self.receipts_close()
        self.note_given_up()
        self.flush()

    def requests_to_book(self, ordered, records, export_items) -> list[tuple]:
        """``(entry id, BookingRequest)`` of the items this run may book, in booking order (for
        the expiry guard's ``plan_calls``)."""
        to_book = []
        for item in ordered:
            entry = item.accounting_entry_id
            record, data = records[entry], export_items.get(entry)
            if data is None or entry in self.earlier:
                continue
            if record.state in (ExportItemRecord.State.PENDING, ExportItemRecord.State.BOOKING):
                request = BookingRequest(
                    item=data.raw,
                    idempotency_key=record.idempotency_key,
                    pleo_job_id=self.job.pleo_job_id,
                )
                to_book.append((entry, request))
        return to_book

    def confirm_all_final(self) -> None:
        """Every item must be final before the final event; re-read once if in doubt."""
        if not any(status in OPEN_ITEM for status in self.statuses.values()):
            return
        items = self.pleo_call(
            "re-reading the job's items",
            lambda: self.client.list_export_job_items(self.job.pleo_job_id),
        )
        self.statuses, self.failure_types = {}, {}  # the job is what Pleo lists now
        self.learn(items)
        still_open = [item for item in items if item.status in OPEN_ITEM]
        if still_open:
            raise Pause(
                f"{plural(len(still_open), 'item')} of the job "
                f"{'is' if len(still_open) == 1 else 'are'} not final in Pleo yet, so the job "
                f"cannot be finished.",
                http=http_call("GET", self.items_path, 200),
            )

    def finish(self) -> str | None:
        statuses = list(self.statuses.values())
        # Items in a status we do not know count as not exported.
        failed = sum(1 for s in statuses if s != pleo.ItemStatus.SUCCESSFUL)
        if failed == 0:
            return self.send_final(pleo.JobEvent.COMPLETED)
        if failed < len(statuses):
            return self.send_final(pleo.JobEvent.COMPLETED_WITH_ERRORS)
        types = {self.failure_types.get(entry, "") for entry in self.statuses}
        reason_type = pleo.JobFailureReasonType.VALIDATION_FAILURE
        if len(types) == 1 and next(iter(types)) in JOB_TYPES:
            reason_type = pleo.JobFailureReasonType(next(iter(types)))
        return self.send_final(
            pleo.JobEvent.FAILED,
            reason=f"All {plural(len(statuses), 'item')} failed to export; each item shows its "
            f"reason in Pleo's export queue.",
            reason_type=reason_type,
        )

    # --- helpers ----------------------------------------------------------------------------

    def pleo_call(self, what: str, call: Callable[[], T]) -> T:
        """One Pleo call; a 422 or 404 on the job ends this run's work on it."""
        self.run.lease.renew_if_due()
        try:
            return call()
        except pleo.PleoUnprocessable as exc:
            if not exc.has_type(pleo.ErrorType.EXPORT_JOB_STATUS_UNPROCESSABLE):
                raise
            remote = self.reread()
            if not remote.is_terminal:
                self.audit(
                    AuditStep.JOB_REFUSED,
                    f"Pleo answered 422 {exc.error_type} while {what}, yet the job is still "
                    f"{remote.status}. Stopping; not retried in this run.",
                    outcome=AuditEntry.Outcome.ERROR,
                    http=error_http(exc),
                )
                raise Ended(None) from None
            raise Ended(
                self.mark_ended(
                    remote, f"while {what} (422 {exc.error_type})", http=error_http(exc)
                )
            ) from None
        except pleo.PleoNotFound as exc:
            raise Ended(self.vanished(error_http(exc))) from None

    def reread(self) -> pleo.ExportJob:
        """Read the job again and mirror it. A status we do not know ends this run's work on the
        job (the mirror audited it and holds the company)."""
        self.run.lease.renew_if_due()
        remote = self.client.get_export_job(self.job.pleo_job_id)
        self.job, _ = self.run.mirror(remote)
        if remote.status == pleo.JobStatus.UNKNOWN:
            raise Ended(Outcome.UNKNOWN_STATUS)
        return remote

    def any_booked(self) -> bool:
        return ExportItemRecord.objects.filter(
            export_job=self.job, result=ExportItemRecord.Result.SUCCESSFUL
        ).exists()

    def counts(self) -> tuple[int, int]:
        ok = sum(1 for s in self.statuses.values() if s == pleo.ItemStatus.SUCCESSFUL)
        return ok, len(self.statuses) - ok

    def half_expired(self) -> bool:
        if self.deadline_fixed is not None:
            return False  # Pleo did not extend the job after an early report: no more of them
        elapsed = (clock.now() - self.touched).total_seconds()
        return elapsed >= self.job.expires_in * REPORT_AFTER_SHARE

    def note_if_at_risk(self, *, force: bool = False) -> None:
        if self.at_risk_noted:
            return
        deadline = self.deadline()
        left = (deadline - clock.now()).total_seconds()
        if not force and left >= self.job.expires_in * AT_RISK_SHARE:
            return
        self.at_risk_noted = True
        self.audit(
            AuditStep.AT_RISK,
            f"The job is at risk of expiring: Pleo expires it at {deadline:%Y-%m-%d %H:%M:%S} "
            f"UTC unless it hears from us ({max(left, 0) / 60:.0f} min left). Continuing.",
            outcome=AuditEntry.Outcome.WARNING,
        )
        notifications.notification_request(
            kind=notifications.Kind.JOB_AT_RISK,
            company=self.run.company,
            job=self.job,
            facts={"deadline": deadline.isoformat(), "minutes_left": round(max(left, 0) / 60)},
        )

    def set_state(self, state: str) -> None:
        if self.job.processing_state == state:
            return
        with self.run.lease.guard():
            self.job.processing_state = state
            self.job.save(update_fields=["processing_state", "updated_at"])

    def audit(self, step: AuditStep, message: str, **kwargs: Any) -> None:
        self.run.audit(step, message, job=self.job, **kwargs)

    def pause(self, message: str, *, http: HttpCall | None = None) -> None:
        self.queue = []
        self.run.work_pending = True
        self.run.job_errors[self.job.pleo_job_id] = message
        text = (
            f"{message} The job stays in progress; the next run continues where this one stopped."
        )
        with self.run.lease.guard():
            failing.job_failing_record(
                job=self.job,
                error=message,
                next_retry_at=clock.now() + timedelta(seconds=settings.RECOVERY_RETRY_SECONDS),
            )
        if self.paused_alike_before(text):
            # The same stop as the job's last error, with no item reported since, less than an
            # hour ago: a retry that met the same problem. Counted on the job and the company,
            # logged every time; audited again when the error changes or hourly.
            logger.warning(
                "Job %s paused again (attempt %d): %s",
                self.job.pleo_job_id,
                self.job.attempts,
                message,
            )
            return None
        if self.job.attempts > 1:
            since = f"{self.job.failing_since:%Y-%m-%d %H:%M:%S} UTC"
            text += f" (Attempt {self.job.attempts}, failing since {since}.)"
        self.audit(AuditStep.PAUSED, text, outcome=AuditEntry.Outcome.ERROR, http=http)
        return None

    def defer(self, exc: pleo.BudgetExhausted) -> None:
        """Stop for the request budget: like a pause, but not audited here.

        Outcomes booked but not reported yet stay committed on their records (booked/failed) and
        are reported by the next run; nothing is booked or sent twice. The start flow sees
        ``client.budget_exhausted`` and writes the run's one "deferred" entry.
        """
        self.queue = []
        self.run.work_pending = True
        self.run.job_errors[self.job.pleo_job_id] = f"Deferred: {exc}."
        with self.run.lease.guard():
            failing.job_failing_record(
                job=self.job, error=f"Deferred: {exc}.", next_retry_at=exc.retry_at
            )
        logger.info("Job %s deferred (request budget): %s", self.job.pleo_job_id, exc)
        return None

    def paused_alike_before(self, text: str) -> bool:
        previous = (
            AuditEntry.objects.filter(export_job=self.job, outcome=AuditEntry.Outcome.ERROR)
            .order_by("-id")
            .first()
        )
        if (
            previous is None
            or previous.step != AuditStep.PAUSED
            or not _same_stop(previous.message, text)
        ):
            return False
        if clock.now() - previous.created_at >= failing.REAUDIT_AFTER:
            return False  # a lasting failure is audited at least once an hour
        return not AuditEntry.objects.filter(
            export_job=self.job, step=AuditStep.ITEMS_REPORTED, pk__gt=previous.pk
        ).exists()


def _same_stop(previous: str, text: str) -> bool:
    """The same stop, whatever attempt note the earlier entry carried."""
    return previous == text or previous.startswith(text + " (Attempt ")
