"""Items booked by hand, and the lifecycle's "already booked?" check before booking.

An operator marks a failed item (``ExportItemRecord`` with result ``failed``) as booked by hand,
giving the ledger reference: a :class:`~exports.settlement.models.ManualBooking` keyed by the
company and Pleo's ``accountingEntryId`` (``manual_booking_create``), or forgets it again
(``manual_booking_forget``). Both are audited with who and when. Neither changes what Pleo
holds: the bookkeeper exports the expense again from Pleo, and the lifecycle then asks
:func:`earlier_bookings_find` before booking: an expense booked by hand, or found by the
adapter's ``lookup_entries`` (booked by an earlier job), is reported successful with that
reference and never booked again; the audit entry names the person or the earlier job.

The check costs one query on the manual bookings and one adapter lookup per page of items (the
journal: one query), plus one query naming the earlier jobs when the adapter found any.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import transaction

from exports import audit, clock
from exports.adapters import AccountingAdapter, BookingResult, LookupUnsupported
from exports.models import AuditEntry, AuditStep, Company, ExportItemRecord, ManualBooking, Trigger
from exports.timestamps import utc_text

# Items checked in one go (one query each way), like a page of Pleo's items.
PAGE = 100


@dataclass(frozen=True)
class EarlierBooking:
    """An expense found booked before this job booked it: the result to report and who did it."""

    result: BookingResult
    source: str
    by_hand: bool = False


@dataclass(frozen=True)
class SettleOutcome:
    settled: list[ManualBooking]
    skipped: list[str]  # one reason per record not settled


def _by_hand(booking: ManualBooking) -> EarlierBooking:
    return EarlierBooking(
        result=BookingResult.success(external_id=booking.reference, exported_at=booking.booked_at),
        source=f"booked by hand by {booking.booked_by_name} on "
        f"{utc_text(booking.booked_at)} (reference {booking.reference})",
        by_hand=True,
    )


def earlier_bookings_find(
    *, company: Company, adapter: AccountingAdapter, entry_ids: Sequence[uuid.UUID], job=None
) -> dict[uuid.UUID, EarlierBooking]:
    """The earlier booking of each of ``entry_ids`` that has one: by hand first, else the
    adapter's. ``job`` (the job being carried) is not an earlier job."""
    found: dict[uuid.UUID, EarlierBooking] = {}
    for start in range(0, len(entry_ids), PAGE):
        page = list(entry_ids[start : start + PAGE])
        for booking in ManualBooking.objects.filter(company=company, accounting_entry_id__in=page):
            found[booking.accounting_entry_id] = _by_hand(booking)
        rest = [entry for entry in page if entry not in found]
        try:
            booked = adapter.lookup_entries(rest) if rest else {}
        except LookupUnsupported:
            booked = {}
        if booked:
            found.update(_by_earlier_jobs(company, adapter, booked, job))
    return found


def _by_earlier_jobs(company, adapter, booked: dict, job) -> dict[uuid.UUID, EarlierBooking]:
    """Name the earlier job of each booking the adapter found (one query)."""
    earlier = (
        ExportItemRecord.objects.filter(
            export_job__company=company,
            accounting_entry_id__in=list(booked),
            result=ExportItemRecord.Result.SUCCESSFUL,
        )
        .exclude(export_job=job)
        .select_related("export_job")
        .order_by("-pk")  # the earliest last: it wins
    )
    jobs = {record.accounting_entry_id: record.export_job for record in earlier}
    found = {}
    for entry_id, result in booked.items():
        entry_id = uuid.UUID(str(entry_id))
        earlier_job = jobs.get(entry_id)
        where = (
            f"by the earlier job {earlier_job.pleo_job_id}"
            if earlier_job is not None
            else "earlier (not by a job this bridge knows)"
        )
        found[entry_id] = EarlierBooking(
            result=result,
            source=f"booked in {adapter.label} {where} as {result.external_id or 'an entry'}",
        )
    return found


def already_booked_message(record: ExportItemRecord, earlier: EarlierBooking) -> str:
    return (
        f"Item {record.accounting_entry_id} is already booked: {earlier.source}. Reported "
        f"successful with that reference; not booked again."
    )


def _audit(record: ExportItemRecord, step: AuditStep, message: str, **kwargs) -> None:
    """An operator's act on an item, in the audit table (trigger: manual, no run)."""
    audit.record(
        company=record.export_job.company,
        export_job=record.export_job,
        trigger=Trigger.MANUAL,
        step=step,
        message=message,
        run_id=None,
        **kwargs,
    )


def manual_booking_create(
    *, records: Iterable[ExportItemRecord], references: dict[int, str], user
) -> SettleOutcome:
    """Mark each failed record as booked by hand with ``references[record.pk]``; audited."""
    settled, skipped = [], []
    now = clock.now()
    name = user.get_username()
    for record in records:
        reference = (references.get(record.pk) or "").strip()[:200]
        company = record.export_job.company
        if record.result != ExportItemRecord.Result.FAILED:
            skipped.append(f"Item {record.accounting_entry_id} did not fail; not marked.")
            continue
        if not reference:
            skipped.append(f"Item {record.accounting_entry_id}: no reference given; not marked.")
            continue
        with transaction.atomic():
            booking, created = ManualBooking.objects.get_or_create(
                company=company,
                accounting_entry_id=record.accounting_entry_id,
                defaults={
                    "reference": reference,
                    "item_record": record,
                    "booked_by": user,
                    "booked_by_name": name,
                    "booked_at": now,
                },
            )
            if not created:
                skipped.append(
                    f"Item {record.accounting_entry_id} is already booked by hand "
                    f"({booking.reference}, by {booking.booked_by_name}); not marked again."
                )
                continue
            _audit(
                record,
                AuditStep.ITEM_BOOKED_BY_HAND,
                f"Item {record.accounting_entry_id} marked as booked by hand by {name} at "
                f"{utc_text(now)}, reference {reference}. When Pleo exports it again it is "
                f"reported successful with that reference, not booked.",
            )
        settled.append(booking)
    return SettleOutcome(settled, skipped)


def manual_booking_forget(*, records: Iterable[ExportItemRecord], user) -> int:
    """Forget the manual booking of each record's expense (if any); audited. How many."""
    name = user.get_username()
    forgotten = 0
    for record in records:
        company = record.export_job.company
        with transaction.atomic():
            booking = (
                ManualBooking.objects.select_for_update()
                .filter(company=company, accounting_entry_id=record.accounting_entry_id)
                .first()
            )
            if booking is None:
                continue
            _audit(
                record,
                AuditStep.MANUAL_BOOKING_FORGOTTEN,
                f"Manual booking of item {record.accounting_entry_id} (reference "
                f"{booking.reference}, by {booking.booked_by_name} on "
                f"{utc_text(booking.booked_at)}) forgotten by {name} at {utc_text(clock.now())}. A "
                f"new export of it will be booked.",
                outcome=AuditEntry.Outcome.WARNING,
            )
            booking.delete()
        forgotten += 1
    return forgotten
