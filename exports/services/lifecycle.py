"""The export lifecycle: carry a job we started (or resumed) to its end, in the same run.

Pleo's how-to steps 2-7 (``pleo-export-api.md`` §1, §3.6-3.8, §7), under the company's lease,
renewed as the run goes. ``ExportJob.processing_state`` shows where a job stands:

``validating``  pre-export validation by the company's accounting adapter
                (``exports.adapters``). On failure: ``failed`` is sent with the adapter's
                ``failureReason``/``failureReasonType`` and no item is touched.
``items``       every page of the job's items (control layer); only ``pending``/``in_progress``
                items are processed, final ones are skipped (a resumed run starts from what
                Pleo says is unfinished). Then every page of the export items (data layer),
                joined on ``accountingEntryId``.
``reporting``   each open item, in a fixed order (booking date, then id), goes to the adapter at
                most once: its ``ExportItemRecord`` is committed as ``booking`` before the call;
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
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings

from exports import clock, crashpoints, pleo
from exports.adapters import (
    AccountingAdapter,
    AdapterUnavailable,
    BookingResult,
    LookupUnsupported,
    UnknownAdapter,
    ValidationResult,
    get_adapter,
)
from exports.audit import HttpCall
from exports.models import AuditEntry, ExportItemRecord, ExportJob
from exports.notifications import service as notifications
from exports.services import failing
from exports.services.expiry_guard import DeadlineGuard
from exports.services.job_end import job_end_in_pleo, what_to_do
from exports.services.leases import LeaseLost
from exports.services.runs import Outcome, RunContext, error_http, http_call

logger = logging.getLogger(__name__)

T = TypeVar("T")


class State:
    """Values of ``ExportJob.processing_state``."""

    VALIDATING = "validating"
    ITEMS = "items"
    REPORTING = "reporting"
    FINISHING = "finishing"
    DONE = "done"


PAST_VALIDATION = frozenset({State.ITEMS, State.REPORTING, State.FINISHING, State.DONE})
OPEN_ITEM = frozenset({pleo.ItemStatus.PENDING, pleo.ItemStatus.IN_PROGRESS})
FINAL_ITEM = frozenset(
    {pleo.ItemStatus.SUCCESSFUL, pleo.ItemStatus.FAILED, pleo.ItemStatus.ABANDONED}
)
MAX_FINAL_EVENT_ATTEMPTS = 3
MAX_REPORT_ATTEMPTS = 3
# Report what is ready once this share of expiresIn has passed since our last update.
REPORT_AFTER_SHARE = 0.5
# Audit the job as at risk when less than this share of expiresIn is left.
AT_RISK_SHARE = 0.25
EVENT_STATUS = {
    pleo.JobEvent.COMPLETED: pleo.JobStatus.COMPLETED,
    pleo.JobEvent.COMPLETED_WITH_ERRORS: pleo.JobStatus.COMPLETED_WITH_ERRORS,
    pleo.JobEvent.FAILED: pleo.JobStatus.FAILED,
}
# Item failure types that are also job failure types (used when every item failed alike).
_JOB_TYPES = {
    member.value
    for member in pleo.JobFailureReasonType
    if member != pleo.JobFailureReasonType.UNKNOWN
}

_KEY_NAMESPACE = uuid.UUID("6f1d8a4e-4b0c-5a7e-9f43-2d1c0e7b9a55")
EVENTS_PATH = "/v3/export-job-events"
EXPORT_ITEMS_PATH = "/v3/export-items"


def idempotency_key(job_id: uuid.UUID | str, accounting_entry_id: uuid.UUID | str) -> str:
    """The same key for the same item of the same job, in every run and process."""
    return str(uuid.uuid5(_KEY_NAMESPACE, f"pleo-export/{job_id}/{accounting_entry_id}"))


class _Pause(Exception):
    """Stop here; the job stays in progress for the next run."""

    def __init__(self, message: str, http: HttpCall | None = None) -> None:
        super().__init__(message)
        self.http = http


class _Ended(Exception):
    """The job is over (or must not be touched again by this run); ``outcome`` for the run."""

    def __init__(self, outcome: str | None) -> None:
        super().__init__(outcome or "")
        self.outcome = outcome


class _FailJob(Exception):
    """The job cannot be exported: send ``failed`` with this reason."""

    def __init__(self, result: ValidationResult) -> None:
        super().__init__(result.message)
        self.result = result


def carry_job(*, run: RunContext, job: ExportJob, resumed: bool) -> str | None:
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
    except _Ended as ended:
        return ended.outcome
    except _Pause as pause:
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


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class _Carrier(DeadlineGuard):
    """One job, one run."""

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

    # --- the stages ---------------------------------------------------------------------------

    def carry(self) -> str | None:
        self.note_if_at_risk()
        try:
            if self.job.processing_state not in PAST_VALIDATION:
                result = self.validate()
                if not result.ok:
                    raise _FailJob(result)
            else:
                try:
                    self.adapter = self.bound_adapter()
                except UnknownAdapter:
                    raise _Pause(
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
        except _FailJob as fail:
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
            except Exception as exc:
                logger.exception("Adapter %s failed to validate", name)
                result = ValidationResult.failed(
                    pleo.JobFailureReasonType.ACCOUNTING_SYSTEM_UNREACHABLE,
                    f"Failed to reach the accounting system to check it ({type(exc).__name__}).",
                )
        if result.ok:
            self.audit("validated", f"Pre-export validation passed. {result.message}".strip())
        else:
            self.audit(
                "validation_failed",
                f"Pre-export validation failed ({result.failure_type}): {result.message} "
                f"No item was touched.",
                outcome=AuditEntry.Outcome.ERROR,
            )
        return result

    def bound_adapter(self) -> AccountingAdapter:
        return get_adapter(
            self.run.company.accounting_adapter, company=self.run.company, job=self.job
        )

    def read_job_items(self) -> list[pleo.ExportJobItem]:
        items = self.pleo_call(
            "reading the job's items",
            lambda: self.client.list_export_job_items(self.job.pleo_job_id),
        )
        self.learn(items)
        open_items = [item for item in items if item.status in OPEN_ITEM]
        unknown = [item for item in items if item.status == pleo.ItemStatus.UNKNOWN]
        done = len(items) - len(open_items) - len(unknown)
        message = f"Read {_plural(len(items), 'job item')} from Pleo: {len(open_items)} to export"
        if done:
            message += f", {done} already final (skipped)"
        if unknown:
            raw = ", ".join(sorted({f"'{item.raw_status[:50]}'" for item in unknown}))
            message += (
                f", {len(unknown)} in a status we do not know ({raw}): not booked, counted as "
                f"not exported"
            )
        self.audit(
            "items_read",
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
                "export_items_refused",
                f"Pleo refused the export items: {exc.message}",
                outcome=AuditEntry.Outcome.ERROR,
                http=http_call("GET", EXPORT_ITEMS_PATH, 400),
            )
            raise _FailJob(
                ValidationResult.failed(
                    pleo.JobFailureReasonType.MISSING_CONFIGURATION,
                    "Contra accounts are not fully configured in Pleo. Map a contra account for "
                    "every currency in Pleo's accounting settings and export again.",
                )
            ) from None
        by_id = {item.accounting_entry_id: item for item in items}
        self.audit(
            "export_items_read",
            f"Read the accounting data of {_plural(len(by_id), 'item')} from Pleo.",
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
        for item in ordered:
            self.run.lease.renew_if_due()
            record = records[item.accounting_entry_id]
            if self.must_stop_booking():
                self.decide_without_booking(record)
            else:
                began = clock.now()
                self.decide(record, export_items.get(item.accounting_entry_id))
                took = (clock.now() - began).total_seconds()
                self.slowest_item = max(self.slowest_item, took)
            if record.state in (ExportItemRecord.State.BOOKED, ExportItemRecord.State.FAILED):
                self.queue.append(record)
            if len(self.queue) >= self.batch_size:
                self.flush()
            elif self.half_expired():
                if self.queue:
                    self.audit(
                        "report_early",
                        f"Half of the job's expiry window has passed since our last update: "
                        f"reporting the {_plural(len(self.queue), 'item')} ready so far so "
                        f"the job does not expire.",
                        outcome=AuditEntry.Outcome.INFO,
                    )
                    before = self.deadline()
                    self.flush()
                    self.check_deadline(before)
                else:
                    self.note_if_at_risk(force=True)
            crashpoints.crash_point("mid_items")
        self.note_given_up()
        self.flush()

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
            raise _Pause(
                f"{_plural(len(still_open), 'item')} of the job "
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
        if len(types) == 1 and next(iter(types)) in _JOB_TYPES:
            reason_type = pleo.JobFailureReasonType(next(iter(types)))
        return self.send_final(
            pleo.JobEvent.FAILED,
            reason=f"All {_plural(len(statuses), 'item')} failed to export; each item shows its "
            f"reason in Pleo's export queue.",
            reason_type=reason_type,
        )

    # --- items ----------------------------------------------------------------------------------

    def learn(self, items: Iterable[pleo.ExportJobItem]) -> None:
        """Take Pleo's word on item statuses; records of items final in Pleo become reported."""
        items = list(items)
        for item in items:
            self.statuses[item.accounting_entry_id] = item.status
            if item.failure_reason_type:
                self.failure_types[item.accounting_entry_id] = item.failure_reason_type
        final = {item.accounting_entry_id: item for item in items if item.status in FINAL_ITEM}
        if not final:
            return
        with self.run.lease.guard():
            records = ExportItemRecord.objects.filter(
                export_job=self.job, accounting_entry_id__in=list(final)
            ).exclude(state=ExportItemRecord.State.REPORTED)
            for record in records:
                status = final[record.accounting_entry_id].status
                record.state = ExportItemRecord.State.REPORTED
                record.reported_at = clock.now()
                if status == pleo.ItemStatus.SUCCESSFUL:
                    record.result = ExportItemRecord.Result.SUCCESSFUL
                elif status == pleo.ItemStatus.FAILED:
                    record.result = ExportItemRecord.Result.FAILED
                record.save(update_fields=["state", "reported_at", "result", "updated_at"])

    def records_for(self, entry_ids: list[uuid.UUID]) -> dict[uuid.UUID, ExportItemRecord]:
        with self.run.lease.guard():
            existing = {
                record.accounting_entry_id: record
                for record in ExportItemRecord.objects.filter(
                    export_job=self.job, accounting_entry_id__in=entry_ids
                )
            }
            missing = [entry for entry in entry_ids if entry not in existing]
            ExportItemRecord.objects.bulk_create(
                ExportItemRecord(
                    export_job=self.job,
                    accounting_entry_id=entry,
                    idempotency_key=idempotency_key(self.job.pleo_job_id, entry),
                )
                for entry in missing
            )
        if missing:
            existing.update(
                {
                    record.accounting_entry_id: record
                    for record in ExportItemRecord.objects.filter(
                        export_job=self.job, accounting_entry_id__in=missing
                    )
                }
            )
        return existing

    def decide(self, record: ExportItemRecord, data: pleo.ExportItem | None) -> None:
        """Bring ``record`` to booked or failed, calling the adapter at most once per item."""
        states = ExportItemRecord.State
        if record.state in (states.BOOKED, states.FAILED):
            return  # decided by an earlier run, not reported yet
        if record.state == states.REPORTED:
            # Pleo still shows the item open: our report did not take effect. Send it again.
            self.save_record(
                record,
                state=states.BOOKED
                if record.result == ExportItemRecord.Result.SUCCESSFUL
                else states.FAILED,
                reported_at=None,
            )
            return
        if record.state == states.BOOKING:
            if self.settle_interrupted(record):
                return
        if data is None:
            self.apply(
                record,
                BookingResult.failure(
                    pleo.ItemFailureReasonType.UNEXPECTED_FAILURE,
                    "Pleo returned no accounting data for this item, so it could not be "
                    "booked. Export it again from Pleo.",
                ),
            )
            return
        self.book(record, data)

    def check_deadline(self, before) -> None:
        """After an early report: one GET, and the deadline Pleo reports now (expiry_guard)."""
        remote = self.pleo_call("re-reading the job after an early report", self.reread)
        if remote.is_terminal:
            raise _Ended(self.mark_ended(remote, "after an early report"))
        self.note_refresh(before, remote)

    def decide_without_booking(self, record: ExportItemRecord) -> None:
        """The expiry guard stops booking: an item decided earlier is reported as decided, an
        interrupted one is settled by lookup, any other is reported failed, never booked."""
        states = ExportItemRecord.State
        if record.state in (states.BOOKED, states.FAILED, states.REPORTED):
            self.decide(record, None)
            return
        if record.state == states.BOOKING and self.settle_interrupted(record):
            return
        self.apply(record, self.timed_out_result(), audit=False)

    def settle_interrupted(self, record: ExportItemRecord) -> bool:
        """A record left ``booking`` by a run that died. True when its outcome is now known."""
        adapter = self.adapter
        assert adapter is not None
        try:
            found = adapter.lookup(record.idempotency_key)
        except LookupUnsupported:
            self.apply(
                record,
                BookingResult.failure(
                    pleo.ItemFailureReasonType.UNEXPECTED_FAILURE,
                    f"An earlier run was interrupted while booking this item and "
                    f"{adapter.label} cannot tell whether it was booked. It was not booked "
                    f"again, to avoid a duplicate: check {adapter.label} and export the item "
                    f"again from Pleo if it is missing.",
                ),
            )
            return True
        if found is None:
            return False  # not booked: safe to book now
        self.apply(record, found)
        self.audit(
            "item_recovered",
            f"Item {record.accounting_entry_id}: an earlier run was interrupted after booking; "
            f"{adapter.label} confirms it as {found.external_id or 'booked'}. Not booked again.",
            outcome=AuditEntry.Outcome.INFO,
        )
        return True

    def book(self, record: ExportItemRecord, data: pleo.ExportItem) -> None:
        adapter = self.adapter
        assert adapter is not None
        # Committed before the adapter is called: a crash from here on is settled by lookup.
        self.save_record(
            record,
            state=ExportItemRecord.State.BOOKING,
            adapter=adapter.name,
            booking_started_at=clock.now(),
        )
        if adapter.writes_locally:
            try:
                with self.run.lease.guard():  # the entry and our record: one transaction
                    result = adapter.export(data.raw, record.idempotency_key)
                    crashpoints.crash_point("after_adapter_call")
                    self.apply(record, result, audit=False)
            except LeaseLost:
                raise
            except Exception as exc:  # rolled back: nothing was booked
                logger.exception("Adapter %s failed on an item", adapter.name)
                result = BookingResult.failure(
                    pleo.ItemFailureReasonType.UNEXPECTED_FAILURE,
                    f"Booking failed unexpectedly in {adapter.label} ({type(exc).__name__}); "
                    f"nothing was booked. Export the item again from Pleo.",
                )
                self.apply(record, result, audit=False)
        else:
            try:
                result = adapter.export(data.raw, record.idempotency_key)
                crashpoints.crash_point("after_adapter_call")
            except AdapterUnavailable as exc:
                self.save_record(record, state=ExportItemRecord.State.PENDING)
                self.flush()  # report what is ready before stopping
                raise _Pause(f"{adapter.label} is unreachable ({exc}); nothing was booked.")
            except Exception as exc:
                logger.exception("Adapter %s failed on an item", adapter.name)
                self.flush()  # report what is ready before stopping
                raise _Pause(
                    f"Booking item {record.accounting_entry_id} in {adapter.label} ended with "
                    f"an unknown outcome ({type(exc).__name__}); the next run asks "
                    f"{adapter.label} before booking it again."
                ) from None
            self.apply(record, result, audit=False)
        if not result.booked:
            self.audit_item_failure(record, result)

    def apply(self, record: ExportItemRecord, result: BookingResult, *, audit: bool = True) -> None:
        if result.booked:
            self.save_record(
                record,
                state=ExportItemRecord.State.BOOKED,
                result=ExportItemRecord.Result.SUCCESSFUL,
                external_id=result.external_id[:200],
                external_url=result.external_url[:500],
                exported_at=result.exported_at or clock.now(),
                failure_reason="",
                failure_reason_type="",
            )
        else:
            self.save_record(
                record,
                state=ExportItemRecord.State.FAILED,
                result=ExportItemRecord.Result.FAILED,
                failure_reason=result.message,
                failure_reason_type=str(
                    result.failure_type or pleo.ItemFailureReasonType.UNEXPECTED_FAILURE
                ),
            )
            if audit:
                self.audit_item_failure(record, result)

    def audit_item_failure(self, record: ExportItemRecord, result: BookingResult) -> None:
        self.audit(
            "item_failed",
            f"Item {record.accounting_entry_id} not booked ({record.failure_reason_type}): "
            f"{result.message}",
            outcome=AuditEntry.Outcome.WARNING,
        )

    def save_record(self, record: ExportItemRecord, **fields: Any) -> None:
        with self.run.lease.guard():
            for name, value in fields.items():
                setattr(record, name, value)
            record.save(update_fields=[*fields, "updated_at"])

    # --- reporting ------------------------------------------------------------------------------

    def flush(self) -> None:
        """Report the queued outcomes, in batches; settle unknown outcomes by re-reading."""
        if not self.queue:
            return
        records = {record.accounting_entry_id: record for record in self.queue}
        self.queue = []
        pending = [self.update_for(record) for record in records.values()]
        unknown_outcomes = 0
        while pending:
            chunk = pending[: self.batch_size]
            try:
                result = self.pleo_call(
                    "reporting item outcomes",
                    lambda chunk=chunk: self.client.update_export_job_items(
                        self.job.pleo_job_id, chunk
                    ),
                )
            except pleo.PleoPayloadTooLarge:
                if len(chunk) == 1:
                    raise
                self.batch_size = (len(chunk) + 1) // 2
                self.audit(
                    "batch_too_large",
                    f"Pleo refused {len(chunk)} item outcomes in one call (413 "
                    f"EXPORT_JOB_ITEMS_UPDATE_LIMIT); sending at most {self.batch_size} per "
                    f"call from now on.",
                    outcome=AuditEntry.Outcome.WARNING,
                    http=http_call("PUT", self.items_path, 413),
                )
                continue
            except pleo.PleoOutcomeUnknown as exc:
                unknown_outcomes += 1
                self.audit(
                    "report_unknown",
                    f"The outcome of reporting {_plural(len(chunk), 'item')} is unknown "
                    f"({exc.message}); re-reading the job's items to see which took effect.",
                    outcome=AuditEntry.Outcome.WARNING,
                    http=http_call("PUT", self.items_path, exc.status),
                )
                landed = self.reconcile({update.accounting_entry_id for update in chunk})
                pending = [u for u in pending if u.accounting_entry_id not in landed]
                if pending and unknown_outcomes >= MAX_REPORT_ATTEMPTS:
                    raise _Pause(
                        f"Reporting item outcomes ended {unknown_outcomes} times with an "
                        f"unknown outcome."
                    ) from None
                continue
            self.mark_touched()
            self.absorb(result, chunk, records)
            pending = pending[len(chunk) :]

    def update_for(self, record: ExportItemRecord) -> pleo.ItemUpdate:
        if record.result == ExportItemRecord.Result.SUCCESSFUL:
            return pleo.ItemUpdate.successful(
                record.accounting_entry_id,
                exported_at=record.exported_at,
                external_id=record.external_id or None,
                external_url=record.external_url or None,
            )
        return pleo.ItemUpdate.failed(
            record.accounting_entry_id,
            record.failure_reason or "The item could not be exported.",
            record.failure_reason_type or pleo.ItemFailureReasonType.UNEXPECTED_FAILURE,
        )

    def absorb(
        self,
        result: pleo.ItemUpdateResult,
        chunk: list[pleo.ItemUpdate],
        records: dict[uuid.UUID, ExportItemRecord],
    ) -> None:
        self.learn(result.items)
        final = {item.accounting_entry_id for item in result.items if item.status in FINAL_ITEM}
        for record in records.values():
            if record.accounting_entry_id in final:
                record.state = ExportItemRecord.State.REPORTED  # saved by learn()
        successful = sum(1 for u in chunk if u.status == pleo.ItemStatus.SUCCESSFUL)
        message = (
            f"Reported {_plural(len(chunk), 'item outcome')} to Pleo: {successful} successful, "
            f"{len(chunk) - successful} failed."
        )
        if result.errors:
            message += f" Pleo rejected {len(result.errors)} of them (see below)."
        self.audit("items_reported", message, http=http_call("PUT", self.items_path, 200))
        for error in result.errors:
            self.audit(
                "item_report_rejected",
                f"Pleo did not accept the outcome of item {error.accounting_entry_id} "
                f"({error.type}): {error.message or 'no message'}. It stays unreported.",
                outcome=AuditEntry.Outcome.WARNING,
                http=http_call("PUT", self.items_path, 200),
            )

    def reconcile(self, sent: set[uuid.UUID]) -> set[uuid.UUID]:
        """After an unknown outcome: which of ``sent`` are final in Pleo now (they landed)."""
        items = self.pleo_call(
            "re-reading the job's items",
            lambda: self.client.list_export_job_items(self.job.pleo_job_id),
        )
        self.learn(items)
        landed = {i.accounting_entry_id for i in items if i.status in FINAL_ITEM} & sent
        self.audit(
            "report_reconciled",
            f"{len(landed)} of {len(sent)} reported item outcomes had taken effect in Pleo and "
            f"are not sent again; {len(sent - landed)} will be sent again.",
            outcome=AuditEntry.Outcome.INFO,
            http=http_call("GET", self.items_path, 200),
        )
        if landed:
            self.mark_touched()  # the PUT that landed refreshed the job in Pleo
        return landed

    # --- the final event --------------------------------------------------------------------

    def send_final(
        self,
        event: pleo.JobEvent,
        *,
        reason: str | None = None,
        reason_type: pleo.JobFailureReasonType | None = None,
    ) -> str | None:
        if self.job.processing_state != State.VALIDATING:
            # A 'failed' after failed validation stays "validating": should it not get through,
            # the next run validates again instead of going on to the items.
            self.set_state(State.FINISHING)
        crashpoints.crash_point("before_final_event")
        for _attempt in range(MAX_FINAL_EVENT_ATTEMPTS):
            self.run.lease.renew_if_due()
            try:
                self.client.post_export_job_event(
                    self.job.pleo_job_id,
                    event,
                    failure_reason=reason,
                    failure_reason_type=reason_type,
                )
            except pleo.PleoOutcomeUnknown as exc:
                self.audit(
                    "finish_unknown",
                    f"The outcome of '{event}' is unknown ({exc.message}); re-reading the job.",
                    outcome=AuditEntry.Outcome.WARNING,
                    http=http_call("POST", EVENTS_PATH, exc.status),
                )
                remote = self.reread()
                if remote.is_terminal:
                    return self.concluded(remote, event, reason_type)
                continue  # still in progress: the event did not land; send it again
            except pleo.PleoUnprocessable as exc:
                if not exc.has_type(pleo.ErrorType.INVALID_EXPORT_JOB_STATUS_CHANGE):
                    raise
                remote = self.reread()
                self.audit(
                    "finish_refused",
                    f"Pleo answered 422 INVALID_EXPORT_JOB_STATUS_CHANGE to '{event}'; the job "
                    f"is {remote.status} in Pleo. Not sent again.",
                    outcome=AuditEntry.Outcome.WARNING,
                    http=http_call("POST", EVENTS_PATH, 422),
                )
                if remote.is_terminal:
                    return self.concluded(remote, event, reason_type)
                raise _Ended(None) from None
            except pleo.PleoNotFound:
                return self.vanished(http_call("POST", EVENTS_PATH, 404))
            else:
                return self.record_final(event, reason, reason_type)
        raise _Pause(
            f"'{event}' was sent {MAX_FINAL_EVENT_ATTEMPTS} times with no known outcome; the "
            f"next run re-reads the job."
        )

    def record_final(
        self,
        event: pleo.JobEvent,
        reason: str | None,
        reason_type: pleo.JobFailureReasonType | None,
        *,
        http: HttpCall | None = None,
        note: str = "",
    ) -> str:
        with self.run.lease.guard():
            self.job.status = EVENT_STATUS[event]
            self.job.completed_at = self.job.completed_at or clock.now()
            self.job.processing_state = State.DONE
            if event == pleo.JobEvent.FAILED:
                self.job.failure_reason = reason or ""
                self.job.failure_reason_type = str(reason_type or "")
            self.job.save(
                update_fields=[
                    "status",
                    "completed_at",
                    "processing_state",
                    "failure_reason",
                    "failure_reason_type",
                    "updated_at",
                ]
            )
            failing.job_failing_end(job=self.job)
        counts = self.counts()
        if event == pleo.JobEvent.COMPLETED:
            step, outcome = "completed", Outcome.COMPLETED
            message = f"Job completed: {_plural(counts[0], 'item')} exported."
        elif event == pleo.JobEvent.COMPLETED_WITH_ERRORS:
            step, outcome = "completed_with_errors", Outcome.COMPLETED_WITH_ERRORS
            message = (
                f"Job completed with errors: {counts[0]} exported, {counts[1]} failed. "
                f"Bookkeepers see each failed item's reason in Pleo ('Review errors')."
            )
        else:
            step, outcome = "job_failed", Outcome.FAILED_JOB
            message = f"Job marked failed in Pleo ({reason_type}): {reason}"
            self.run.job_errors[self.job.pleo_job_id] = message
        self.audit(
            step,
            f"{message} {note}".strip(),
            outcome=AuditEntry.Outcome.OK
            if event == pleo.JobEvent.COMPLETED
            else AuditEntry.Outcome.WARNING,
            http=http or http_call("POST", EVENTS_PATH, 202),
        )
        notifications.notification_request_job_outcome(
            company=self.run.company, job=self.job, cause=notifications.JobEnd.REPORTED
        )
        return outcome

    def concluded(
        self,
        remote: pleo.ExportJob,
        event: pleo.JobEvent,
        reason_type: pleo.JobFailureReasonType | None,
    ) -> str:
        """The job is final in Pleo after our final event: ours, or someone else's doing."""
        ours = remote.status == EVENT_STATUS[event] and (
            event != pleo.JobEvent.FAILED or remote.failure_type == reason_type
        )
        if ours:
            return self.record_final(
                event,
                remote.failure_reason,
                reason_type,
                http=http_call("GET", self.job_path, 200),
                note="(Our event had taken effect.)",
            )
        return self.mark_ended(remote, "when the job was to be finished")

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
                    "job_refused",
                    f"Pleo answered 422 {exc.error_type} while {what}, yet the job is still "
                    f"{remote.status}. Stopping; not retried in this run.",
                    outcome=AuditEntry.Outcome.ERROR,
                    http=error_http(exc),
                )
                raise _Ended(None) from None
            raise _Ended(
                self.mark_ended(
                    remote, f"while {what} (422 {exc.error_type})", http=error_http(exc)
                )
            ) from None
        except pleo.PleoNotFound as exc:
            raise _Ended(self.vanished(error_http(exc))) from None

    def reread(self) -> pleo.ExportJob:
        """Read the job again and mirror it. A status we do not know ends this run's work on the
        job (the mirror audited it and holds the company)."""
        self.run.lease.renew_if_due()
        remote = self.client.get_export_job(self.job.pleo_job_id)
        self.job, _ = self.run.mirror(remote)
        if remote.status == pleo.JobStatus.UNKNOWN:
            raise _Ended(Outcome.UNKNOWN_STATUS)
        return remote

    def mark_ended(self, remote: pleo.ExportJob, when: str, http: HttpCall | None = None) -> str:
        """The job is final in Pleo, not by our final event. Returns the run's outcome:
        ``job_expired`` / ``failed_job`` (an error, with what to do) or ``finished_elsewhere``."""
        end = job_end_in_pleo(job=self.job, remote=remote, when=when)
        with self.run.lease.guard():
            self.job.processing_state = State.DONE
            self.job.save(update_fields=["processing_state", "updated_at"])
            failing.job_failing_end(job=self.job, error=end.message if end.bad else "")
        message = end.message
        if not end.bad and self.any_booked():
            message += " Items already booked stay in the accounting system."
        if end.bad:
            self.run.job_errors[self.job.pleo_job_id] = end.message
        self.audit(
            "job_ended",
            message,
            outcome=AuditEntry.Outcome.ERROR if end.bad else AuditEntry.Outcome.WARNING,
            http=http or http_call("GET", self.job_path, 200),
        )
        # Notification hook: a job of ours ended failed/expired in Pleo (issue 17's job_expired).
        notifications.notification_request_job_outcome(
            company=self.run.company, job=self.job, cause=notifications.JobEnd.ENDED_IN_PLEO
        )
        return end.outcome

    def vanished(self, http: HttpCall | None) -> str:
        message = (
            f"Pleo no longer finds this job (404 EXPORT_NOT_FOUND); nothing more is sent for it. "
            f"{what_to_do(self.job)}"
        )
        with self.run.lease.guard():
            self.job.processing_state = State.DONE
            self.job.save(update_fields=["processing_state", "updated_at"])
            failing.job_failing_end(job=self.job, error=message)
        self.run.job_errors[self.job.pleo_job_id] = message
        self.audit("job_ended", message, outcome=AuditEntry.Outcome.ERROR, http=http)
        notifications.notification_request_job_outcome(
            company=self.run.company, job=self.job, cause=notifications.JobEnd.NOT_FOUND
        )
        return Outcome.FAILED_JOB

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
            "at_risk",
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

    def audit(self, step: str, message: str, **kwargs: Any) -> None:
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
        self.audit("paused", text, outcome=AuditEntry.Outcome.ERROR, http=http)
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
        if previous is None or previous.step != "paused" or not _same_stop(previous.message, text):
            return False
        if clock.now() - previous.created_at >= failing.REAUDIT_AFTER:
            return False  # a lasting failure is audited at least once an hour
        return not AuditEntry.objects.filter(
            export_job=self.job, step="items_reported", pk__gt=previous.pk
        ).exists()


def _same_stop(previous: str, text: str) -> bool:
    """The same stop, whatever attempt note the earlier entry carried."""
    return previous == text or previous.startswith(text + " (Attempt ")
