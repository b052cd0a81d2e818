"""Fetch the receipt files of the items about to be booked, and index what was archived.

:func:`receipts_fetch_for_items` fetches the files of a chunk of items before they are booked:
:func:`receipts_download` (no database; the export lifecycle, ``exports.services.
lifecycle_receipts``, runs it for the next chunk in a background thread while it books this one),
then :func:`receipts_index`. Per item the answer is an :class:`ItemReceipts`: the archived files
(``Receipt`` rows, one per file, written here), and either a failure that keeps the item from being
booked, or notes for the audit table:

* a declared file that cannot be had (download failure, over the size limit, a type not accepted)
  fails the item with that file's failure type when ``RECEIPTS_REQUIRED`` is on; when it is off
  the item is booked without the file and a note says so;
* content of another accepted type than declared is archived under the sniffed type, with a note;
* an item whose files could not all be tried before the job's deadline is ``out_of_time``.

An item without files has nothing to fetch and is booked as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction

from exports.pleo import ItemFailureReasonType
from exports.receipts.fetch import (
    FetchConfig,
    Fetched,
    OutOfTime,
    ReceiptFailure,
    file_refs,
    receipts_fetch_many,
)
from exports.receipts.models import Receipt


@dataclass
class ItemReceipts:
    receipts: list[Receipt] = field(default_factory=list)
    failure_type: ItemFailureReasonType | None = None
    failure: str = ""
    notes: list[str] = field(default_factory=list)
    # Set when a file could not be fetched before this deadline (the job's, less a margin).
    out_of_time: datetime | None = None

    @property
    def blocks_booking(self) -> bool:
        return self.out_of_time is not None or self.failure_type is not None


def receipts_download(
    *,
    company_pk: object,
    items: Iterable[tuple[Any, dict]],
    deadline: datetime | None = None,
    config: FetchConfig | None = None,
    pool: ThreadPoolExecutor | None = None,
) -> dict[tuple[int, int], Fetched | ReceiptFailure | OutOfTime]:
    """Download and archive every file of ``items`` (``(record, ExportItemV3 dict)`` pairs); the
    outcome per ``(record pk, position)``. Touches no database: may run in another thread."""
    wanted = [((record.pk, ref.position), ref) for record, data in items for ref in file_refs(data)]
    return receipts_fetch_many(
        wanted, company_pk=company_pk, config=config, deadline=deadline, pool=pool
    )


def receipts_index(
    *,
    company: Any,
    job: Any,
    items: Iterable[tuple[Any, dict]],
    outcomes: dict[tuple[int, int], Fetched | ReceiptFailure | OutOfTime],
    write_guard: Callable[[], AbstractContextManager] = transaction.atomic,
) -> dict[int, ItemReceipts]:
    """Judge the downloads per item and write the ``Receipt`` rows of the items that may be
    booked (one transaction, under ``write_guard``). One :class:`ItemReceipts` per record pk."""
    required = bool(settings.RECEIPTS_REQUIRED)
    verdicts: dict[int, ItemReceipts] = {}
    to_index: list[tuple[ItemReceipts, Any, list[Fetched]]] = []
    for record, data in items:
        verdict = verdicts[record.pk] = ItemReceipts()
        fetched: list[Fetched] = []
        for ref in file_refs(data):
            outcome = outcomes[(record.pk, ref.position)]
            if isinstance(outcome, OutOfTime):
                verdict.out_of_time = outcome.deadline
            elif isinstance(outcome, ReceiptFailure):
                if required:
                    verdict.failure_type = verdict.failure_type or outcome.failure_type
                    verdict.failure = f"{verdict.failure} {outcome.message}".strip()
                else:
                    verdict.notes.append(
                        f"{outcome.message} Booked without it (RECEIPTS_REQUIRED is off)."
                    )
            else:
                fetched.append(outcome)
                if outcome.type_note:
                    verdict.notes.append(outcome.type_note)
        if not verdict.blocks_booking:
            to_index.append((verdict, record, fetched))
    if any(fetched for _, _, fetched in to_index):
        with write_guard():
            _index(to_index, job, company)
    else:
        for verdict, _, _ in to_index:
            verdict.receipts = []
    return verdicts


def receipts_fetch_for_items(
    *,
    company: Any,
    job: Any,
    items: Iterable[tuple[Any, dict]],
    deadline: datetime | None = None,
    config: FetchConfig | None = None,
    write_guard: Callable[[], AbstractContextManager] = transaction.atomic,
) -> dict[int, ItemReceipts]:
    """Download (:func:`receipts_download`) then index (:func:`receipts_index`) in one go."""
    pairs = list(items)
    outcomes = receipts_download(
        company_pk=company.pk, items=pairs, deadline=deadline, config=config
    )
    return receipts_index(
        company=company, job=job, items=pairs, outcomes=outcomes, write_guard=write_guard
    )


def _index(to_index: list[tuple[ItemReceipts, Any, list[Fetched]]], job: Any, company: Any) -> None:
    """The ``Receipt`` rows of every item of ``to_index`` (set as its verdict's ``receipts``):
    one read of the rows already there (a run that stopped), one insert of the new ones, one
    update of the others, whatever the number of items."""
    records = [record for _, record, fetched in to_index if fetched]
    existing = {
        (row.item_record_id, row.position): row
        for row in Receipt.objects.filter(item_record__in=records)
    }
    new, changed, names = [], [], []
    for verdict, record, fetched in to_index:
        verdict.receipts = []
        for item in fetched:
            values = {
                "company": company,
                "export_job": job,
                "accounting_entry_id": record.accounting_entry_id,
                "declared_type": item.ref.declared_type,
                "declared_size": item.ref.declared_size,
                "content_type": item.content_type,
                "size": item.size,
                "sha256": item.sha256,
                "storage_name": item.storage_name,
                "source_host": item.ref.host[:255],
                "source_path": item.ref.path[:1000],
                "fetched_at": item.fetched_at,
            }
            row = existing.get((record.pk, item.ref.position))
            if row is None:
                row = Receipt(item_record=record, position=item.ref.position, **values)
                new.append(row)
            else:
                for name, value in values.items():
                    setattr(row, name, value)
                changed.append(row)
                names = list(values)
            verdict.receipts.append(row)
    Receipt.objects.bulk_create(new)
    if changed:
        Receipt.objects.bulk_update(changed, names)
