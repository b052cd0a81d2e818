"""Booking export items in Xero, exactly once, with their receipts: what the Xero adapter's
``book``, ``book_batch`` and ``lookup`` do (``exports.adapters.xero``).

One :class:`XeroBookingSession` per adapter (one job of one company): the connection's client
(budgets waited for inside the run, the lease renewed: :class:`~exports.services.
xero_connections.XeroBudget`), the organisation (base currency, lock date) read once, the
company's mapping read once.

Exactly once:

* Every write carries an ``Idempotency-Key`` (at most 128 characters). A batch of documents
  (at most :data:`MAX_BATCH`, one kind per request, ``summarizeErrors=false``) is keyed by a
  digest of its items' sorted keys; a contact by its name; an attachment by its file's SHA-256
  and the document.
* Before a batch is sent, each item's :class:`~exports.models.XeroBooking` is written: the batch
  key and the exact ``Narration``/``Reference`` sent (which carries Pleo's ``accountingEntryId``
  and the job id). After Xero's answer, the document's id is added.
* ``lookup(idempotency_key=…)`` (an interrupted run): that row's document, else the document
  whose ``Narration``/``Reference`` is exactly the text sent (a ``where`` query); no row means
  nothing was sent. ``lookup(accounting_entry_id=…)`` (a re-export): the newest booking of that
  entry for the organisation, in any job.
* Before booking, an item whose entry was booked earlier (a re-export, or a run that stopped
  after Xero answered) is reported with its existing document, unless Xero shows it ``VOIDED``
  or ``DELETED`` (then it is booked anew); the result's message names the job that booked it.

Receipts: each ``BookingRequest.receipts`` file is attached to the booked document (its SHA-256
kept on the booking, so a retry attaches only what is missing). A failed upload fails the item
(``receipt_upload_failure``) with the booking kept: exporting it again finds the booking and
only attaches.

A validation error of one element fails that item (``accounting_system_validation_failure``,
Xero's message); the others are booked. Xero unreachable before anything was sent, or the
connection unusable (refused, revoked, needs re-authorisation): :class:`AdapterUnavailable`
(the items stay open; the job pauses). An unknown outcome (a timeout or 5xx after sending) is
raised as it is: the lifecycle leaves the items ``booking`` and the next run asks ``lookup``.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from exports import clock, crashpoints
from exports.adapters.base import (
    NO_ATTACHMENTS,
    AdapterUnavailable,
    AttachmentLimits,
    BookingRequest,
    BookingResult,
    ReceiptFile,
)
from exports.adapters.journal import Unbookable
from exports.models import XeroBooking, XeroConnection, XeroMapping
from exports.pleo import ItemFailureReasonType as ItemFailure
from exports.services import xero_connections
from exports.services.xero_documents import BookingOptions, PlannedDocument, plan_document
from exports.xero.errors import (
    XeroAuthError,
    XeroError,
    XeroHostNotAllowed,
    XeroOutcomeUnknown,
    XeroRateLimited,
    XeroUnavailable,
)
from exports.xero.models import DocumentStatus, PleoCodeKind

logger = logging.getLogger(__name__)

MAX_BATCH = 50
GONE = frozenset({"VOIDED", "DELETED"})
ID_FIELD = {
    XeroBooking.Kind.MANUAL_JOURNAL: "ManualJournalID",
    XeroBooking.Kind.BILL: "InvoiceID",
    XeroBooking.Kind.CREDIT_NOTE: "CreditNoteID",
}
TEXT_FIELD = {
    XeroBooking.Kind.MANUAL_JOURNAL: "Narration",
    XeroBooking.Kind.BILL: "Reference",
    XeroBooking.Kind.CREDIT_NOTE: "Reference",
}
WEB_PATH = {
    XeroBooking.Kind.MANUAL_JOURNAL: "/Journal/View.aspx?invoiceID={}",
    XeroBooking.Kind.BILL: "/AccountsPayable/View.aspx?InvoiceID={}",
    XeroBooking.Kind.CREDIT_NOTE: "/AccountsPayable/ViewCreditNote.aspx?creditNoteID={}",
}


def batch_key(keys: Sequence[str]) -> str:
    """The ``Idempotency-Key`` of a batch: a digest of its items' sorted keys (the same items,
    the same key, in any order)."""
    return "pleo-batch-" + hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()


def external_url(kind: str, document_id: Any) -> str:
    return settings.XERO_WEB_APP_URL + WEB_PATH[XeroBooking.Kind(kind)].format(document_id)


def where_literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _errors_of(element: dict) -> list[str]:
    errors = element.get("ValidationErrors") or []
    messages = [str(e.get("Message") or "").strip() for e in errors if isinstance(e, dict)]
    flagged = element.get("StatusAttributeString") == "ERROR" or element.get("HasErrors")
    if flagged and not any(messages):
        messages = ["Xero refused the document without saying why"]
    return [m for m in messages if m]


@dataclass
class _Pending:
    """One request of a batch on its way: its plan, or its result once known."""

    request: BookingRequest
    plan: PlannedDocument | None = None
    result: BookingResult | None = None
    booking: XeroBooking | None = None
    notes: list[str] = field(default_factory=list)


class XeroBookingSession:
    """See the module docstring. ``heartbeat`` renews the run's lease while waiting."""

    def __init__(
        self,
        *,
        company,
        job=None,
        heartbeat: Callable[[], None] | None = None,
        limits: AttachmentLimits = NO_ATTACHMENTS,
    ) -> None:
        self.company = company
        self.limits = limits  # the adapter's attachment_limits
        self.job = job
        self.heartbeat = heartbeat
        self._client = None
        self._connection: XeroConnection | None = None
        self._organisation = None
        self._codes: dict[tuple[str, str], str] | None = None
        # The bookings of the batch being booked, read once (``prefetch``).
        self._by_key: dict[str, XeroBooking] = {}
        self._earlier: dict[uuid.UUID, XeroBooking] = {}

    # --- the connection, its client and the organisation ---------------------------------

    @property
    def connection(self) -> XeroConnection:
        if self._connection is None:
            connection = XeroConnection.objects.filter(company=self.company).first()
            problem = xero_connections.xero_connection_unusable_reason(connection=connection)
            if problem:
                raise AdapterUnavailable(problem)
            self._connection = connection
        return self._connection

    @property
    def client(self):
        if self._client is None:
            self._client = xero_connections.xero_client(
                connection=self.connection,
                budget_wait=float(settings.XERO_BUDGET_WAIT_SECONDS),
                heartbeat=self.heartbeat,
            )
        return self._client

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        """One Xero call: a refused connection or Xero unreachable (nothing sent) becomes
        :class:`AdapterUnavailable`; anything else is raised as it is."""
        try:
            return fn()
        except xero_connections.XeroConnectionUnusable as exc:
            raise AdapterUnavailable(str(exc)) from None
        except XeroAuthError as exc:
            raise AdapterUnavailable(
                f"Xero refused the connection while {what} ({exc}); reconnect Xero on the "
                f"company's admin page."
            ) from None
        except (XeroUnavailable, XeroHostNotAllowed) as exc:
            raise AdapterUnavailable(f"Xero could not be reached while {what} ({exc})") from None
        except XeroRateLimited as exc:  # refused: nothing was done
            raise AdapterUnavailable(f"Xero refused a call while {what}: {exc}") from None

    def options(self) -> BookingOptions:
        if self._organisation is None:
            self._organisation = self.call("reading the organisation", self.client.organisation)
        connection = self.connection
        return BookingOptions(
            job_id=getattr(self.job, "pleo_job_id", "") or "",
            base_currency=self._organisation.base_currency,
            default_method=connection.default_method,
            posted=connection.document_status == DocumentStatus.POSTED,
            lock_date=self._organisation.lock_date,
            lock_policy=connection.lock_date_policy,
        )

    def code(self, kind: str, pleo_code: str) -> str:
        if self._codes is None:
            self._codes = {
                (m.kind, m.pleo_code): m.xero_code
                for m in XeroMapping.objects.filter(company=self.company).exclude(xero_code="")
            }
        return self._codes.get((kind, pleo_code), "")

    # --- lookup -----------------------------------------------------------------------------

    def lookup(
        self, *, idempotency_key: str | None = None, accounting_entry_id=None
    ) -> BookingResult | None:
        if idempotency_key:
            booking = XeroBooking.objects.filter(idempotency_key=idempotency_key).first()
            if booking is not None:
                found = self.confirm(booking)
                if found is not None:
                    return self.attach_archived(booking, found)
                if accounting_entry_id is None:
                    return None
        if accounting_entry_id is not None:
            booking = self.earlier_booking(accounting_entry_id)
            return self.confirm(booking) if booking is not None else None
        return None

    def earlier_booking(self, accounting_entry_id) -> XeroBooking | None:
        return self.earlier_bookings([accounting_entry_id]).first()

    def earlier_bookings(self, accounting_entry_ids):
        """The bookings of these entries with a document, in this organisation, newest first."""
        return XeroBooking.objects.filter(
            connection=self.connection,
            tenant_id=self.connection.tenant_id,
            accounting_entry_id__in=list(accounting_entry_ids),
            document_id__isnull=False,
        ).order_by("-id")

    def confirm(self, booking: XeroBooking) -> BookingResult | None:
        """The booking's document as Xero shows it now; None when Xero has none (or it was
        voided or deleted). A booking without a document id is searched by its exact text."""
        if booking.document_id is None:
            text_field = TEXT_FIELD[XeroBooking.Kind(booking.kind)]
            where = f"{text_field}=={where_literal(booking.reference)}"
            found = self.call(
                "looking up an earlier booking",
                lambda: self.client.documents(booking.kind, where=where),
            )
            live = [d for d in found if str(d.get("Status", "")).upper() not in GONE]
            if not live:
                return None
            booking.document_id = uuid.UUID(str(live[0][ID_FIELD[XeroBooking.Kind(booking.kind)]]))
            booking.save(update_fields=["document_id", "updated_at"])
            return self.result(booking)
        document = self.call(
            "reading an earlier booking",
            lambda: self.client.document(booking.kind, booking.document_id),
        )
        if document is None or str(document.get("Status", "")).upper() in GONE:
            return None
        return self.result(booking)

    def result(self, booking: XeroBooking, message: str = "") -> BookingResult:
        return BookingResult(
            booked=True,
            external_id=str(booking.document_id),
            external_url=external_url(booking.kind, booking.document_id),
            exported_at=clock.now(),
            message=message,
        )

    # --- book ---------------------------------------------------------------------------------

    def book_batch(self, requests: Sequence[BookingRequest]) -> list[BookingResult]:
        pending = [_Pending(request) for request in requests]
        self.prefetch(pending)
        for entry in pending:
            self.known_or_plan(entry)
        for kind in XeroBooking.Kind:
            group = [e for e in pending if e.result is None and e.plan and e.plan.kind == kind]
            for start in range(0, len(group), MAX_BATCH):
                self.send(kind, group[start : start + MAX_BATCH])
        # Each attachment is recorded as soon as Xero has it (one UPDATE a receipt, not one a
        # batch): a run killed mid-uploads leaves on record exactly what was attached, so the next
        # run sends only the rest and never leans on Xero's Idempotency-Key window for the others.
        for entry in pending:
            if entry.booking is not None and entry.result and entry.result.booked:
                entry.result = self.attach(entry)
        return [entry.result for entry in pending]

    def prefetch(self, pending: list[_Pending]) -> None:
        """The batch's bookings, two queries: each item's by its key, and the newest booking of
        each accounting entry with a document (``earlier_booking``)."""
        keys = [entry.request.idempotency_key for entry in pending]
        self._by_key = {
            b.idempotency_key: b for b in XeroBooking.objects.filter(idempotency_key__in=keys)
        }
        entry_ids = {_uuid_or_none(entry.request.accounting_entry_id) for entry in pending}
        self._earlier = {}
        for booking in self.earlier_bookings(entry_ids - {None}):
            self._earlier.setdefault(booking.accounting_entry_id, booking)  # newest first

    def known_or_plan(self, entry: _Pending) -> None:
        """An entry booked earlier (a re-export, this key after a stop) is reported with its
        document; any other is planned (a plan refused is the item's failure)."""
        request = entry.request
        booking = self._by_key.get(request.idempotency_key)
        if booking is None or booking.document_id is None:
            earlier = self._earlier.get(_uuid_or_none(request.accounting_entry_id))
            booking = earlier or booking
        if booking is not None and booking.document_id is not None:
            found = self.confirm(booking)
            if found is not None:
                entry.booking = booking
                same_job = str(booking.pleo_job_id) == str(request.pleo_job_id)
                entry.result = self.result(
                    booking,
                    ""
                    if same_job
                    else f"Already booked in Xero as {booking.document_id} by the export job "
                    f"{booking.pleo_job_id}; reported with that booking, not booked again.",
                )
                return
        try:
            entry.plan = plan_document(request.item, codes=self.code, options=self.options())
        except Unbookable as refused:
            entry.result = refused.result
            return
        if entry.plan.vendor is not None:
            contact_id = self.contact_for(entry.plan.vendor)
            entry.plan.body["Contact"] = {"ContactID": contact_id}

    def contact_for(self, vendor) -> str:
        """The supplier's contact: the mapping of Pleo's vendor code, else Xero's contact with
        that account number or name, else a new contact; kept in the mapping."""
        code = str(vendor.get("code") or "").strip()
        name = str(vendor.get("name") or code or "Pleo supplier").strip()[:255]
        if code and self.code(PleoCodeKind.VENDOR, code):
            return self.code(PleoCodeKind.VENDOR, code)
        client = self.client
        found = []
        if code:
            found = self.call(
                "finding the supplier",
                lambda: client.contacts_where(f"AccountNumber=={where_literal(code)}"),
            )
        if not found:
            found = self.call(
                "finding the supplier",
                lambda: client.contacts_where(f"Name=={where_literal(name)}"),
            )
        if found:
            contact_id = str(found[0].contact_id)
        else:
            element = {"Name": name, "IsSupplier": True}
            if code:
                element["AccountNumber"] = code[:50]
            key = "pleo-contact-" + hashlib.sha256(f"{code}\n{name}".encode()).hexdigest()
            contact = self.call(
                "creating the supplier",
                lambda: client.create_contact(element, idempotency_key=key),
            )
            contact_id = str(contact.contact_id)
        if code:
            XeroMapping.objects.update_or_create(
                company=self.company,
                kind=PleoCodeKind.VENDOR,
                pleo_code=code[:200],
                defaults={"xero_code": contact_id, "proposed": False},
            )
            self._codes[(PleoCodeKind.VENDOR, code)] = contact_id
        return contact_id

    def send(self, kind: str, group: list[_Pending]) -> None:
        """One request for ``group``: the bookings written first (with the batch key), the
        answers mapped back element by element."""
        key = batch_key([e.request.idempotency_key for e in group])
        connection = self.connection
        new, known = [], []
        for entry in group:
            fields = {
                "connection": connection,
                "tenant_id": connection.tenant_id,
                "accounting_entry_id": entry.plan.accounting_entry_id,
                "pleo_job_id": _uuid_or_none(entry.request.pleo_job_id),
                "kind": kind,
                "reference": entry.plan.reference,
                "batch_key": key,
                "document_id": None,
            }
            entry.booking = self._by_key.get(entry.request.idempotency_key)
            if entry.booking is None:
                entry.booking = XeroBooking(idempotency_key=entry.request.idempotency_key)
                new.append(entry.booking)
            else:
                known.append(entry.booking)
            for name, value in fields.items():
                setattr(entry.booking, name, value)
        with transaction.atomic():  # the batch's bookings, committed before the call
            XeroBooking.objects.bulk_create(new)
            _save(known, *fields)
        self._by_key.update({b.idempotency_key: b for b in new})
        answered = self.call(
            f"booking {len(group)} document(s)",
            lambda: self.client.put_documents(
                kind, [e.plan.body for e in group], idempotency_key=key
            ),
        )
        # Xero answered; our bookings do not know the documents yet (the harshest moment to die:
        # the next run finds them by their exact text).
        crashpoints.crash_point("after_adapter_call")
        for entry, element in zip(group, answered, strict=True):
            errors = _errors_of(element) if isinstance(element, dict) else ["no answer"]
            if errors:
                entry.booking.delete()  # nothing was saved for it
                entry.booking = None
                entry.result = BookingResult.failure(
                    ItemFailure.ACCOUNTING_SYSTEM_VALIDATION_FAILURE,
                    f"Xero refused the document: {'; '.join(errors)}"[:1000],
                )
                continue
            entry.booking.document_id = uuid.UUID(str(element[ID_FIELD[XeroBooking.Kind(kind)]]))
            note = ""
            if entry.plan.moved_from is not None:
                note = (
                    f"Dated {entry.plan.moved_from.isoformat()} in Pleo, on or before Xero's lock "
                    f"date: booked on {entry.plan.body['Date']}."
                )
            entry.result = self.result(entry.booking, note)
        _save([e.booking for e in group if e.booking is not None], "document_id")

    def attach_archived(self, booking: XeroBooking, found: BookingResult) -> BookingResult:
        """An interrupted booking found again: its item's archived receipts (those within Xero's
        limits) attached now if they were not yet (the run stopped before attaching)."""
        from exports.receipts.files import receipt_adapter_file
        from exports.receipts.models import Receipt

        rows = Receipt.objects.filter(
            item_record__idempotency_key=booking.idempotency_key
        ).order_by("position")
        files = [receipt_adapter_file(row) for row in rows]  # named as when first sent
        files = [f for f in files if not self.limits.judge([f])]
        request = BookingRequest(
            item={},
            idempotency_key=booking.idempotency_key,
            pleo_job_id=booking.pleo_job_id or "",
            receipts=tuple(files[: self.limits.max_count]),
        )
        return self.attach(_Pending(request, booking=booking, result=found))

    def attach(self, entry: _Pending) -> BookingResult:
        """Attach the receipts not attached yet, each recorded once attached; a failure fails the
        item, the booking kept."""
        booking = entry.booking
        done = set(booking.attached)
        for receipt in entry.request.receipts:
            if receipt.sha256 in done:
                continue
            try:
                self.upload(booking, receipt)
            except (XeroError, OSError, AdapterUnavailable) as exc:
                if isinstance(exc, XeroOutcomeUnknown):
                    logger.warning("Attachment to %s: outcome unknown", booking.document_id)
                return BookingResult.failure(
                    ItemFailure.RECEIPT_UPLOAD_FAILURE,
                    f"Booked in Xero as {booking.document_id}, but the receipt {receipt.name} "
                    f"could not be attached ({exc}). Export the item again from Pleo: the "
                    f"booking is found and only the receipt is attached.",
                )
            done.add(receipt.sha256)
            booking.attached = sorted(done)
            booking.save(update_fields=["attached", "updated_at"])
        return entry.result

    def upload(self, booking: XeroBooking, receipt: ReceiptFile) -> None:
        with receipt.open() as handle:
            content = handle.read()
        name = f"{receipt.sha256[:8]}-{receipt.name}"[:100]
        key = f"pleo-att-{booking.document_id}-{receipt.sha256[:64]}"
        self.call(
            "attaching a receipt",
            lambda: self.client.attach(
                booking.kind,
                booking.document_id,
                name,
                content,
                content_type=receipt.content_type,
                idempotency_key=key,
            ),
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _save(bookings: list[XeroBooking], *names: str) -> None:
    """Save ``names`` (and ``updated_at``) of every booking: one UPDATE (``bulk_update``)."""
    if not bookings:
        return
    now = timezone.now()  # what ``auto_now`` would set
    for booking in bookings:
        booking.updated_at = now
    XeroBooking.objects.bulk_update(bookings, [*names, "updated_at"])


def _uuid_or_none(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
