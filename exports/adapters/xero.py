"""The Xero adapter: job validation, the per-item mapping check, and booking.

``validate(job)``: the company's Xero connection is usable (connected, not "needs
re-authorisation", an organisation chosen) → else ``accounting_system_authentication_failure``;
the scopes Xero granted include every scope of ``XERO_SCOPES`` → else ``invalid_configuration``;
the tenant answers (``GET /Organisation``; a 401/403 after a refresh marks the connection for
re-authorisation) and its base currency is known → else ``accounting_system_authentication_failure``
/ ``accounting_system_unreachable`` / ``invalid_configuration``. Each message names what to fix.
A limit Xero says is spent is no failure of the job: a minute's 429 is waited for (its
``Retry-After``, up to ``XERO_BUDGET_WAIT_SECONDS``, the lease renewed), a longer one or the
day's raises ``AdapterUnavailable`` (the job pauses until the next run); our own budget spent
raises ``BudgetExhausted`` (the run is deferred).

``precheck(request)``: every Pleo code of the item (account, tax code, tags, contra account)
maps to an active Xero code (:mod:`exports.services.xero_mapping`) → else ``account_unknown`` /
``tax_code_unknown`` / ``tag_unknown`` with a message naming the code and the mapping page. A
vendor without a mapping is no failure: booking a bill finds or creates its contact and keeps it
in the mapping (a vendor mapped to a contact that is no longer usable is ``vendor_unknown``).
Nothing is written to Xero.

``book``/``book_batch``/``lookup``: :mod:`exports.services.xero_booking` (manual journals, bills
and credit notes, by Pleo's ``bookkeeping.method``: :mod:`exports.services.xero_documents`),
with ``Idempotency-Key`` on every write, up to 50 documents a request, receipts attached
(``attachment_limits``: Xero's 25 MB and 10 files a document).

``estimate_calls``/``call_room``: the Xero calls the items still to book need, and the room
the organisation's budgets leave (:mod:`exports.services.xero_estimate`).

``booking_summary``/``read_back``: for the reconciliation report, the document as planned and
the documents as Xero holds them now, read by id with the other documents of the same expenses
(``duplicates``), 25 bookings a call (:mod:`exports.services.xero_read_back`). Its
``summary_source`` is ``booked_document``; the records it booked before it had its own summary
carry the base adapter's (Pleo's total and codes, no source recorded:
``unrecorded_summary_source``), so the report checks only that those bookings exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from exports.adapters.base import (
    PLEO_ATTACHMENT_LIMITS,
    AccountingAdapter,
    AdapterUnavailable,
    AttachmentLimits,
    BookingRequest,
    BookingResult,
    CallEstimate,
    CallRoom,
    ItemCheck,
    LedgerDocument,
    LedgerSummary,
    LookupUnsupported,
    ValidationResult,
)
from exports.choices import BookedSummarySource
from exports.pleo import JobFailureReasonType

AUTH = JobFailureReasonType.ACCOUNTING_SYSTEM_AUTHENTICATION_FAILURE
CONFIG = JobFailureReasonType.INVALID_CONFIGURATION

# Xero's attachment limits (xero_sandbox/README.md): 25 MB a file, 10 files a document; the
# types Pleo's receipts come in.
XERO_ATTACHMENT_LIMITS = AttachmentLimits(
    max_bytes=25 * 1024 * 1024, max_count=10, content_types=PLEO_ATTACHMENT_LIMITS.content_types
)


class XeroAdapter(AccountingAdapter):
    name: ClassVar[str] = "xero"
    label: ClassVar[str] = "Xero"
    supports_vendor_based_bookkeeping: ClassVar[bool] = True
    attachment_limits: ClassVar[AttachmentLimits] = XERO_ATTACHMENT_LIMITS
    max_batch: ClassVar[int] = 50  # documents per request (the lifecycle's batch size)
    # The planned document, in Xero's terms; the summaries stored before the read-back
    # existed (no source recorded) are the base adapter's, Pleo's total and codes.
    summary_source: ClassVar[BookedSummarySource] = BookedSummarySource.BOOKED_DOCUMENT
    unrecorded_summary_source: ClassVar[BookedSummarySource] = BookedSummarySource.PLEO_ITEM

    def __init__(self, *, company: Any, job: Any = None) -> None:
        super().__init__(company=company, job=job)
        self.heartbeat = None  # the lifecycle sets the run's lease renewal here
        self._session = None
        # precheck's reads, kept for the job's run (like the booking session's mapping): the
        # connection, the mappings and the Xero codes they point to, each read once.
        self._checked_connection = None
        self._checked: dict = {}

    @property
    def session(self):
        from exports.services.xero_booking import XeroBookingSession

        if self._session is None:
            self._session = XeroBookingSession(
                company=self.company,
                job=self.job,
                heartbeat=self.heartbeat,
                limits=self.attachment_limits,
            )
        return self._session

    def _connection(self):
        from exports.models import XeroConnection

        return XeroConnection.objects.filter(company=self.company).first()

    def check_connection(self) -> ValidationResult:
        """The Xero checks of ``validate`` (the module docstring), without the base class's."""
        from django.conf import settings

        from exports.services import xero_connections
        from exports.xero.errors import XeroAuthError, XeroError, XeroRateLimited

        connection = self._connection()
        problem = xero_connections.xero_connection_unusable_reason(connection=connection)
        if problem:
            return ValidationResult.failed(AUTH, problem)
        missing = sorted(xero_connections.xero_required_scopes() - connection.scopes)
        if missing:
            return ValidationResult.failed(
                CONFIG,
                f"Xero did not grant the scopes {', '.join(missing)}: use 'Reconnect Xero' on the "
                f"company's admin page and allow them at Xero.",
            )
        try:
            with xero_connections.xero_client(
                connection=connection,
                budget_wait=float(settings.XERO_BUDGET_WAIT_SECONDS),
                heartbeat=self.heartbeat,
            ) as client:
                organisation = client.organisation()
        except xero_connections.XeroConnectionUnusable as exc:
            return ValidationResult.failed(AUTH, str(exc))
        except XeroRateLimited as exc:  # refused, nothing done: the job waits, it is not failed
            raise AdapterUnavailable(
                f"Xero refused a call while checking the connection: {exc}"
            ) from None
        except XeroAuthError as exc:
            return ValidationResult.failed(
                AUTH,
                f"Xero refused the connection to '{connection.tenant_name}' ({exc}). Use "
                f"'Reconnect Xero' on the company's admin page.",
            )
        except XeroError as exc:
            return ValidationResult.failed(
                JobFailureReasonType.ACCOUNTING_SYSTEM_UNREACHABLE,
                f"Xero organisation '{connection.tenant_name}' could not be reached: {exc}",
            )
        if not organisation.base_currency:
            return ValidationResult.failed(
                CONFIG,
                f"Xero organisation '{connection.tenant_name}' reports no base currency: set "
                f"it in Xero (Settings → Organisation details), then export again.",
            )
        return ValidationResult.passed()

    def validate(self, job: Any) -> ValidationResult:
        checked = self.check_connection()
        if not checked.ok:
            return checked
        return super().validate(job)

    def precheck(self, request: BookingRequest) -> ItemCheck:
        from exports.services import xero_mapping

        if self._checked_connection is None:
            self._checked_connection = self._connection()
        connection = self._checked_connection
        if connection is None:
            return ItemCheck.failed(
                "invalid_configuration", "The company is not connected to Xero."
            )
        failure = xero_mapping.xero_mapping_check_item(
            company=self.company,
            connection=connection,
            item=request.item,
            new_vendors=True,
            memo=self._checked,
        )
        return ItemCheck.passed() if failure is None else ItemCheck.failed(*failure)

    def book(self, request: BookingRequest) -> BookingResult:
        return self.book_batch([request])[0]

    def book_batch(self, requests: Sequence[BookingRequest]) -> list[BookingResult]:
        return self.session.book_batch(requests)

    def estimate_calls(
        self, requests: Sequence[BookingRequest], *, first_alone: bool = False
    ) -> CallEstimate:
        from exports.services.xero_estimate import xero_calls_estimate

        return xero_calls_estimate(
            session=self.session,
            requests=requests,
            limits=self.attachment_limits,
            batch=self.max_batch,
            first_alone=first_alone,
        )

    def call_room(self, *, seconds: float, at_once: int = 1) -> CallRoom:
        from exports.services.xero_estimate import xero_call_room

        return xero_call_room(connection=self.session.connection, seconds=seconds, at_once=at_once)

    def booking_summary(self, request: BookingRequest) -> LedgerSummary | None:
        from exports.services.xero_read_back import xero_booking_summary

        return xero_booking_summary(session=self.session, request=request)

    def read_back(self, external_ids: Sequence[str]) -> dict[str, LedgerDocument]:
        from exports.services.xero_read_back import xero_read_back

        return xero_read_back(company=self.company, external_ids=external_ids)

    def lookup(self, *, idempotency_key=None, accounting_entry_id=None) -> BookingResult | None:
        return self.session.lookup(
            idempotency_key=idempotency_key, accounting_entry_id=accounting_entry_id
        )

    def lookup_entries(self, accounting_entry_ids) -> dict:
        """Not asked before booking: ``book_batch`` finds a re-exported expense itself, in the
        batch's own search (one Xero call per batch, not one per item), attaches the receipts
        the earlier booking lacks, and books anew when Xero shows it voided or deleted. So the
        lifecycle's before-booking check consults only the bookings made by hand."""
        raise LookupUnsupported(
            f"{self.label} finds earlier bookings while booking (book_batch), not before."
        )
