"""The Xero adapter's bookings read back for the reconciliation report: what its
``booking_summary`` and ``read_back`` do (``exports.adapters.base``; the report is
``exports.services.reconciliation``).

``xero_booking_summary``: the document ``book`` writes for the item, planned as the booking
session plans it (the company's mapping; no Xero call), read by
:func:`~exports.services.xero_documents.document_summary`: its total (a bill's or credit note's
lines with tax, a journal's debits), currency and the account codes of its lines. None for an
item that cannot be planned (it is not booked either).

``xero_read_back``: the external id of a Xero booking is its document's id (``XeroBooking.
document_id``; ``BookingResult.external_id``), and our ``XeroBooking`` row says its kind and its
Pleo ``accountingEntryId``. The documents are read per kind with Xero's ``where`` (``GET
/ManualJournals``, ``/Invoices``, ``/CreditNotes``, ``page``/``pageSize``; Xero shows a list's
lines only when it is paged), :data:`ITEMS_PER_CALL` bookings a call, each as two clauses joined
by ``OR``: its id (``ManualJournalID==Guid("…")``) and the text every document we book carries
(``Narration.Contains("Pleo <accountingEntryId>")``, a bill's or credit note's ``Reference``).
So one call reads the documents and finds the other documents of the same Pleo expenses in that
kind, the ``duplicates`` (``IDs=`` on Invoices would read the bills alone, and CreditNotes and
ManualJournals have no ``IDs``). A document Xero shows ``VOIDED`` or ``DELETED``, or does not
show, is absent from the answer (``missing``); a voided or deleted twin is no duplicate.
Not searched: a twin of another kind (an expense booked once as a journal and once as a bill)
and a twin whose text no longer names the expense.

Calls: for N bookings of one kind, ⌈N / 25⌉ ``GET`` requests (one more page per 100 documents a
call finds beyond the first 100, which 25 bookings and their twins rarely reach), plus one
``GET /Organisation`` when the connection does not know its base currency. 1,000 journals: 40
calls. Each goes through the company's Xero client: the organisation's and the app's budgets
(a spent minute waited for up to ``XERO_BUDGET_WAIT_SECONDS``), bounded retries honouring
``Retry-After``, one ``xero_call`` audit entry each. Xero unreachable, refusing the connection,
its limits or ours spent: :class:`~exports.adapters.base.ReadBackUnavailable` with the reason
(the report shows ``ledger_unreadable`` for those bookings, never ``missing``).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings

from exports import pleo
from exports.adapters.base import (
    AdapterUnavailable,
    BookingRequest,
    LedgerDocument,
    LedgerSummary,
    ReadBackUnavailable,
)
from exports.adapters.journal import Unbookable
from exports.models import Company, XeroBooking, XeroConnection
from exports.services import xero_connections
from exports.services.xero_booking import GONE, ID_FIELD, TEXT_FIELD, where_literal
from exports.services.xero_documents import BookingOptions, document_summary, plan_document

# Bookings asked about in one call: two clauses each (~130 characters, ~175 URL-encoded), so a
# request line of about 4.4 KB, well under the 8 KB that common servers accept.
ITEMS_PER_CALL = 25


def search_text(accounting_entry_id: Any) -> str:
    """What every document booked for the expense carries (``plan_document``'s text)."""
    return f"Pleo {accounting_entry_id}"


def xero_booking_summary(*, session, request: BookingRequest) -> LedgerSummary | None:
    """The module docstring: the planned document's summary; ``session`` is the adapter's
    :class:`~exports.services.xero_booking.XeroBookingSession` (its connection and mapping)."""
    item = request.item if isinstance(request.item, Mapping) else {}
    amount = item.get("amount") if isinstance(item.get("amount"), Mapping) else {}
    wallet = amount.get("inWalletCurrency") if isinstance(amount, Mapping) else None
    currency = str(wallet.get("currency") or "") if isinstance(wallet, Mapping) else ""
    try:
        connection = session.connection
        options = BookingOptions(
            job_id=str(request.pleo_job_id),
            base_currency=currency,  # the plan's currency check is booking's business
            default_method=connection.default_method,
        )
        plan = plan_document(item, codes=session.code, options=options)
    except (Unbookable, AdapterUnavailable):
        return None
    return document_summary(plan.kind, plan.body, currency=currency)


def where_clause(kind: str, wanted: Iterable[tuple[uuid.UUID, uuid.UUID | None]]) -> str:
    """Each ``(document id, accounting entry id or None)`` as its id and its text, ``OR``-ed."""
    id_field, text_field = ID_FIELD[XeroBooking.Kind(kind)], TEXT_FIELD[XeroBooking.Kind(kind)]
    clauses = []
    for document_id, entry_id in wanted:
        clauses.append(f'{id_field}==Guid("{document_id}")')
        if entry_id is not None:
            clauses.append(f"{text_field}.Contains({where_literal(search_text(entry_id))})")
    return " OR ".join(clauses)


def _unreadable(exc: Exception) -> ReadBackUnavailable:
    return ReadBackUnavailable(f"Xero could not be read ({exc}); reconcile again later.")


def xero_read_back(*, company: Company, external_ids: Iterable[str]) -> dict[str, LedgerDocument]:
    """The module docstring: ``{external id: LedgerDocument}`` of the documents Xero holds."""
    connection = XeroConnection.objects.filter(company=company).first()
    problem = xero_connections.xero_connection_unusable_reason(connection=connection)
    if problem:
        raise ReadBackUnavailable(problem)
    asked: dict[uuid.UUID, str] = {}
    for external_id in external_ids:
        try:
            asked[uuid.UUID(str(external_id))] = external_id
        except ValueError:
            continue  # not a Xero document id: Xero has no such document
    if not asked:
        return {}
    bookings = {}
    for booking in XeroBooking.objects.filter(
        connection=connection, document_id__in=list(asked)
    ).order_by("-id"):
        bookings.setdefault(booking.document_id, booking)
    by_kind: dict[str, list[tuple[uuid.UUID, uuid.UUID | None]]] = defaultdict(list)
    for document_id in asked:
        booking = bookings.get(document_id)
        kinds = [booking.kind] if booking else list(XeroBooking.Kind)  # no row: asked in each
        for kind in kinds:
            by_kind[kind].append((document_id, booking.accounting_entry_id if booking else None))
    try:
        with xero_connections.xero_client(
            connection=connection, budget_wait=float(settings.XERO_BUDGET_WAIT_SECONDS)
        ) as client:
            currency = connection.base_currency or client.organisation().base_currency
            found: dict[str, LedgerDocument] = {}
            for kind in XeroBooking.Kind:
                wanted = by_kind.get(kind, [])
                for start in range(0, len(wanted), ITEMS_PER_CALL):
                    chunk = wanted[start : start + ITEMS_PER_CALL]
                    documents = client.documents_paged(kind, where=where_clause(kind, chunk))
                    found.update(_documents(kind, chunk, documents, asked, currency))
    except xero_connections.XeroConnectionUnusable as exc:
        raise ReadBackUnavailable(str(exc)) from None
    except pleo.PleoError as exc:  # every XeroError, and our own budget's BudgetExhausted
        raise _unreadable(exc) from None
    return found


def _documents(kind, chunk, documents, asked, currency) -> dict[str, LedgerDocument]:
    """The chunk's documents Xero holds (live), each with the live twins of its expense."""
    id_field, text_field = ID_FIELD[XeroBooking.Kind(kind)], TEXT_FIELD[XeroBooking.Kind(kind)]
    live = {}
    for document in documents:
        if not isinstance(document, dict) or str(document.get("Status", "")).upper() in GONE:
            continue
        try:
            live[uuid.UUID(str(document.get(id_field)))] = document
        except ValueError:
            continue
    twins: dict[uuid.UUID, set[str]] = defaultdict(set)
    for document_id, document in live.items():
        text = str(document.get(text_field) or "").lower()
        for _, entry_id in chunk:
            if entry_id is not None and search_text(entry_id).lower() in text:
                twins[entry_id].add(str(document_id))
    found = {}
    for document_id, entry_id in chunk:
        document = live.get(document_id)
        if document is None:
            continue
        external_id = asked[document_id]
        found[external_id] = LedgerDocument(
            external_id=external_id,
            summary=document_summary(kind, document, currency=currency),
            duplicates=tuple(sorted(twins.get(entry_id, set()) - {str(document_id)})),
        )
    return found


__all__ = [
    "ITEMS_PER_CALL",
    "search_text",
    "where_clause",
    "xero_booking_summary",
    "xero_read_back",
]
