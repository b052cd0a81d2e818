"""The export lifecycle's items: learn Pleo's statuses, and bring each open item to booked or
failed: the accounting adapter's ``precheck`` first (an item it refuses is recorded failed and
never booked), then its ``book_batch`` (or ``book``) at most once per item, a batch at a time.
Crash-safe: an adapter that writes locally books a report chunk in one transaction with our
records of it; for any other, the batch's records are committed ``booking`` first, and a record
left ``booking`` is settled by the adapter's ``lookup`` by our idempotency key. The records are
written in bulk: one UPDATE a batch, one a status when Pleo confirms the report.

A mixin of the lifecycle's ``_Carrier`` (``exports.services.lifecycle``): it uses the carrier's
``run``, ``job``, ``client``, ``audit`` and ``pleo_call``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

from django.utils import timezone

from exports import clock, crashpoints, pleo
from exports.adapters import (
    AccountingAdapter,
    AdapterUnavailable,
    BookingRequest,
    BookingResult,
    LookupUnsupported,
)
from exports.adapters.item_snapshot import item_snapshot
from exports.models import AuditEntry, AuditStep, ExportItemRecord
from exports.services.leases import LeaseLost
from exports.services.lifecycle_common import (
    FINAL_ITEM,
    Ended,
    Pause,
    idempotency_key,
)
from exports.services.settlement import already_booked_message, earlier_bookings_find
from exports.settlement.models import BY_HAND

logger = logging.getLogger("exports.services.lifecycle")


def batch_limit(adapter: AccountingAdapter) -> int:
    """Items per ``book_batch`` call: the adapter's ``max_batch`` when it has a batch call of
    its own that books with its own ``book`` rules, else 1 (booked with ``book``, one by one):
    the default ``book_batch`` books one by one and could not say which of a failed batch were
    booked, and a subclass that overrides only ``book`` (a test's slow or picky journal) must
    have its ``book`` called."""
    batch_owner = _defined_by(type(adapter), "book_batch")
    book_owner = _defined_by(type(adapter), "book")
    if batch_owner is AccountingAdapter or (
        book_owner is not batch_owner and issubclass(book_owner, batch_owner)
    ):
        return 1
    return max(1, int(getattr(adapter, "max_batch", 1)))


def _defined_by(cls: type, name: str) -> type:
    return next(owner for owner in cls.__mro__ if name in vars(owner))


def book_with(adapter: AccountingAdapter, requests: list[BookingRequest]) -> list[BookingResult]:
    """``book_batch`` when the adapter has a batch call (``batch_limit``), else ``book`` each."""
    if batch_limit(adapter) > 1:
        return adapter.book_batch(requests)
    return [adapter.book(request) for request in requests]


class ItemBooking:
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
        results = {
            pleo.ItemStatus.SUCCESSFUL: ExportItemRecord.Result.SUCCESSFUL,
            pleo.ItemStatus.FAILED: ExportItemRecord.Result.FAILED,
        }
        by_status: dict[pleo.ItemStatus, list[uuid.UUID]] = {}
        for entry_id, item in final.items():
            by_status.setdefault(item.status, []).append(entry_id)
        now = clock.now()
        with self.run.lease.guard():  # one UPDATE per status, not one per record
            for status, entry_ids in by_status.items():
                fields = {"state": ExportItemRecord.State.REPORTED, "reported_at": now}
                if status in results:
                    fields["result"] = results[status]
                ExportItemRecord.objects.filter(
                    export_job=self.job, accounting_entry_id__in=entry_ids
                ).exclude(state=ExportItemRecord.State.REPORTED).update(
                    **fields, updated_at=timezone.now()
                )

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

    def find_earlier(self, records: dict[uuid.UUID, ExportItemRecord]) -> None:
        """Before booking: which of the items still to book are booked already (by hand, or
        found by the adapter from an earlier job). One query each way per page of items."""
        to_book = [
            entry
            for entry, record in records.items()
            if record.state in (ExportItemRecord.State.PENDING, ExportItemRecord.State.BOOKING)
        ]
        assert self.adapter is not None
        self.earlier = earlier_bookings_find(
            company=self.run.company, adapter=self.adapter, entry_ids=to_book, job=self.job
        )

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
        earlier = self.earlier.get(record.accounting_entry_id)
        if earlier is not None:
            adapter = BY_HAND if earlier.by_hand else self.adapter.name
            kept = {"item_snapshot": item_snapshot(data.raw)} if data is not None else {}
            self.apply(record, earlier.result, adapter=adapter, **kept)
            self.audit(
                AuditStep.ITEM_ALREADY_BOOKED,
                already_booked_message(record, earlier),
                outcome=AuditEntry.Outcome.INFO,
            )
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
        # lifecycle_receipts: the files were fetched before booking, and fit the adapter's limits.
        blocked, receipts = self.receipts_for_booking(record)
        if blocked is not None:
            self.apply(record, blocked, item_snapshot=item_snapshot(data.raw))
            return
        self.book(record, data, receipts)

    def check_deadline(self, before) -> None:
        """After an early report: one GET, and the deadline Pleo reports now (expiry_guard)."""
        remote = self.pleo_call("re-reading the job after an early report", self.reread)
        if remote.is_terminal:
            raise Ended(self.mark_ended(remote, "after an early report"))
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
        self.apply(record, self.timed_out_result(record.accounting_entry_id), audit=False)

    def settle_interrupted(self, record: ExportItemRecord) -> bool:
        """A record left ``booking`` by a run that died. True when its outcome is now known."""
        adapter = self.adapter
        assert adapter is not None
        try:
            found = adapter.lookup(idempotency_key=record.idempotency_key)
        except AdapterUnavailable as exc:
            self.flush()  # report what is ready before stopping
            raise Pause(
                f"{adapter.label} could not be asked about an interrupted booking ({exc}); "
                f"nothing was booked."
            ) from None
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
            AuditStep.ITEM_RECOVERED,
            f"Item {record.accounting_entry_id}: an earlier run was interrupted after booking; "
            f"{adapter.label} confirms it as {found.external_id or 'booked'}. Not booked again.",
            outcome=AuditEntry.Outcome.INFO,
        )
        return True

    def book(self, record: ExportItemRecord, data: pleo.ExportItem, receipts: tuple = ()) -> None:
        adapter = self.adapter
        assert adapter is not None
        request = BookingRequest(
            item=data.raw,
            idempotency_key=record.idempotency_key,
            pleo_job_id=self.job.pleo_job_id,
            receipts=receipts,
        )
        # The item as received, redacted, for the audit pack: kept whether it is booked or
        # refused, written with the record's next save (no query of its own).
        snapshot = item_snapshot(data.raw)
        if self.refused_by_precheck(adapter, record, request, item_snapshot=snapshot):
            return
        summary = adapter.booking_summary(request)
        booked_as = (
            {
                "booked_amount": summary.amount,
                "booked_currency": summary.currency[:3],
                "booked_accounts": summary.accounts_text[:500],
                "booked_summary_source": adapter.summary_source,
            }
            if summary is not None
            else {}
        )
        started = {
            "item_snapshot": snapshot,
            "adapter": adapter.name,
            "booking_started_at": clock.now(),
        }
        if not adapter.writes_locally:
            # Committed with the batch, before the adapter is called (book_pending): a crash
            # from there on is settled by lookup.
            started["state"] = ExportItemRecord.State.BOOKING
        # An adapter that writes locally: recorded with the outcome, in the transaction that
        # writes its entries (a crash before that commit leaves the item pending, nothing booked).
        for name, value in started.items():
            setattr(record, name, value)
        self.to_book.append((record, request, booked_as))
        full = len(self.to_book) >= batch_limit(adapter)
        if adapter.writes_locally:  # one transaction per report chunk
            full = full or len(self.to_book) + len(self.queue) >= self.batch_size
        if full:
            self.book_pending()

    def book_pending(self) -> None:
        """Book the items waiting with one ``book_batch`` of the adapter (``book`` for a single
        item of an adapter without a batch call). An adapter that writes locally books them in
        one transaction with our records of them (``book_locally``); any other has them
        committed ``booking`` first, in one transaction."""
        waiting, self.to_book = self.to_book, []
        if not waiting:
            return
        adapter = self.adapter
        assert adapter is not None
        if adapter.writes_locally:
            self.book_locally(waiting)
            return
        records = [record for record, _, _ in waiting]
        self.save_records(records, BOOKING_FIELDS)
        try:
            results = book_with(adapter, [request for _, request, _ in waiting])
            crashpoints.crash_point("after_adapter_call")
        except LeaseLost:
            raise
        except AdapterUnavailable as exc:
            self.save_records(records, ["state"], state=ExportItemRecord.State.PENDING)
            self.flush()  # report what is ready before stopping
            raise Pause(f"{adapter.label} is unreachable ({exc}); nothing was booked.")
        except pleo.BudgetExhausted as exc:  # nothing sent for these: the run is deferred
            self.save_records(records, ["state"], state=ExportItemRecord.State.PENDING)
            self.flush()
            self.client.budget_exhausted = exc
            raise
        except Exception as exc:
            logger.exception("Adapter %s failed on an item", adapter.name)
            self.flush()  # report what is ready before stopping
            first = waiting[0][0].accounting_entry_id
            what = f"item {first}" if len(waiting) == 1 else f"{len(waiting)} items from {first}"
            raise Pause(
                f"Booking {what} in {adapter.label} ended with an unknown outcome "
                f"({type(exc).__name__}); the next run asks {adapter.label} before booking "
                f"{'it' if len(waiting) == 1 else 'them'} again."
            ) from None
        with self.run.lease.guard():
            self.record_results(waiting, results)
        self.after_booking(waiting, results)

    def book_locally(self, waiting: list) -> None:
        """Book ``waiting`` with an adapter that writes locally: its entries and our records of
        them in one transaction (all or nothing). When the batch fails, each item is booked
        alone, so only the item at fault fails."""
        adapter = self.adapter
        assert adapter is not None
        try:
            with self.run.lease.guard():  # the entries and our records: one transaction
                results = book_with(adapter, [request for _, request, _ in waiting])
                for _ in results:
                    crashpoints.crash_point("after_adapter_call")
                self.record_results(waiting, results)
        except LeaseLost:
            raise
        except Exception as exc:  # rolled back: nothing of the batch was booked
            if len(waiting) > 1:
                logger.warning(
                    "Adapter %s failed on a batch of %d items (%s); booking them one by one",
                    adapter.name,
                    len(waiting),
                    type(exc).__name__,
                )
                for one in waiting:
                    self.book_locally([one])
                return
            logger.exception("Adapter %s failed on an item", adapter.name)
            result = BookingResult.failure(
                pleo.ItemFailureReasonType.UNEXPECTED_FAILURE,
                f"Booking failed unexpectedly in {adapter.label} ({type(exc).__name__}); "
                f"nothing was booked. Export the item again from Pleo.",
            )
            results = [result]
            with self.run.lease.guard():
                self.record_results(waiting, results)
        self.after_booking(waiting, results)

    def record_results(self, waiting: list, results: list[BookingResult]) -> None:
        """Each result on its record, all in one UPDATE (inside the caller's guard)."""
        names: set[str] = set()
        for (record, _, booked_as), result in zip(waiting, results, strict=True):
            fields = outcome_fields(result, **(booked_as if result.booked else {}))
            for name, value in fields.items():
                setattr(record, name, value)
            names.update(fields)
        # With the fields set before the batch (book), which no earlier write saved.
        bulk_save([record for record, _, _ in waiting], [*names, *BOOKING_FIELDS])

    def after_booking(self, waiting: list, results: list[BookingResult]) -> None:
        """Audit what a batch's results say, and queue its records for reporting."""
        for (record, _, _), result in zip(waiting, results, strict=True):
            if not result.booked:
                self.audit_item_failure(record, result)
            elif result.message:
                self.audit(
                    AuditStep.ITEM_BOOKED_NOTE,
                    f"Item {record.accounting_entry_id}: {result.message}",
                    outcome=AuditEntry.Outcome.INFO,
                )
            self.queue.append(record)

    def refused_by_precheck(
        self,
        adapter: AccountingAdapter,
        record: ExportItemRecord,
        request: BookingRequest,
        **extra: Any,
    ) -> bool:
        """Ask the adapter's ``precheck`` (it never books). True when the item was refused and
        is now recorded failed; raises :class:`Pause` when the adapter cannot check now."""
        try:
            check = adapter.precheck(request)
        except AdapterUnavailable as exc:
            self.save_record(record, state=ExportItemRecord.State.PENDING)
            self.flush()  # report what is ready before stopping
            raise Pause(f"{adapter.label} is unreachable ({exc}); nothing was booked.")
        except Exception as exc:  # a check books nothing: the item fails, nothing to settle
            logger.exception("Adapter %s failed checking an item", adapter.name)
            result = BookingResult.failure(
                pleo.ItemFailureReasonType.UNEXPECTED_FAILURE,
                f"Checking the item failed unexpectedly in {adapter.label} "
                f"({type(exc).__name__}); nothing was booked. Export the item again from Pleo.",
            )
        else:
            if check.ok:
                return False
            result = check.as_result()
        self.apply(record, result, adapter=adapter.name, **extra)
        return True

    def apply(
        self, record: ExportItemRecord, result: BookingResult, *, audit: bool = True, **extra: Any
    ) -> None:
        """Record ``result`` on ``record`` (with ``extra`` fields), auditing a failure."""
        self.save_record(record, **outcome_fields(result, **extra))
        if audit and not result.booked:
            self.audit_item_failure(record, result)

    def audit_item_failure(self, record: ExportItemRecord, result: BookingResult) -> None:
        self.audit(
            AuditStep.ITEM_FAILED,
            f"Item {record.accounting_entry_id} not booked ({record.failure_reason_type}): "
            f"{result.message}",
            outcome=AuditEntry.Outcome.WARNING,
        )

    def save_record(self, record: ExportItemRecord, **fields: Any) -> None:
        with self.run.lease.guard():
            for name, value in fields.items():
                setattr(record, name, value)
            record.save(update_fields=[*fields, "updated_at"])

    def save_records(self, records: list[ExportItemRecord], names, **fields: Any) -> None:
        """``fields`` set on every record, then ``names`` (and those) saved: one UPDATE."""
        with self.run.lease.guard():
            for record in records:
                for name, value in fields.items():
                    setattr(record, name, value)
            bulk_save(records, [*names, *fields])


# What ``book`` sets on a record before its batch is booked (saved with the batch).
BOOKING_FIELDS = ("item_snapshot", "adapter", "booking_started_at", "state")


def outcome_fields(result: BookingResult, **extra: Any) -> dict[str, Any]:
    """The fields of a record that ``result`` decides (with ``extra`` fields)."""
    if result.booked:
        return {
            **extra,
            "state": ExportItemRecord.State.BOOKED,
            "result": ExportItemRecord.Result.SUCCESSFUL,
            "external_id": result.external_id[:200],
            "external_url": result.external_url[:500],
            "exported_at": result.exported_at or clock.now(),
            "failure_reason": "",
            "failure_reason_type": "",
        }
    return {
        **extra,
        "state": ExportItemRecord.State.FAILED,
        "result": ExportItemRecord.Result.FAILED,
        "failure_reason": result.message,
        "failure_reason_type": str(
            result.failure_type or pleo.ItemFailureReasonType.UNEXPECTED_FAILURE
        ),
    }


def bulk_save(records: list[ExportItemRecord], names) -> None:
    """Save ``names`` (and ``updated_at``) of every record: one UPDATE (``bulk_update``), where
    ``save`` would send one each."""
    if not records:
        return
    now = timezone.now()  # what ``auto_now`` would set
    for record in records:
        record.updated_at = now
    ExportItemRecord.objects.bulk_update(records, sorted({*names, "updated_at"}))
