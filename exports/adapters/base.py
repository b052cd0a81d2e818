"""The accounting adapter interface: what the export lifecycle asks of an accounting system.

An adapter is built per company (and per job) by :func:`exports.adapters.get_adapter`. Receipts,
another accounting system, per-item checks, batch booking, re-exports and a preview each add an
implementation of this contract, never a change to it.

``validate(job) -> ValidationResult``
    Job-level pre-export validation, before any item is touched: is the accounting system
    reachable, is it configured, can it do what the job needs (vendor-based bookkeeping when the
    job's ``vendor_based_bookkeeping`` is true; an adapter not ``selectable`` yet refuses every
    job)? A failure carries a job ``failureReasonType``
    (:class:`~exports.pleo.enums.JobFailureReasonType`) and a message for the bookkeeper; the
    lifecycle then sends ``failed`` to Pleo and stops. Subclasses call ``super().validate(job)``
    first.

``precheck(request) -> ItemCheck``
    A per-item check that never books and writes nothing: can this item be booked as it is?
    A failure carries an item ``failureReasonType``
    (:class:`~exports.pleo.enums.ItemFailureReasonType`: ``account_unknown``,
    ``tax_code_unknown``, ``tag_unknown``, ``vendor_unknown``, ``invalid_configuration``, the
    ``receipt_*`` types, …) and a message the bookkeeper can act on. The lifecycle runs it
    before booking; an item that fails is recorded failed with that type and message and is
    never booked. The default passes. A preview runs it alone. :class:`AdapterUnavailable`
    means "could not check, try later" (the item stays open); any other exception fails the
    item (``unexpected_failure``): nothing was booked.

``book(request) -> BookingResult``
    Book one item (a :class:`BookingRequest`). Booked: ``external_id``, ``external_url``,
    ``exported_at``. Not booked: an item failure type and a message, as ``precheck`` (``book``
    must not trust that ``precheck`` ran: it refuses the same items). The request's
    ``idempotency_key`` is the same for the same item of the same job on every attempt; an
    adapter that can pass it on to its accounting system should. Raise
    :class:`AdapterUnavailable` when the system could not be reached and nothing was booked. Any
    other exception means "outcome unknown": the item is left for the next run, which asks
    ``lookup`` first.

``book_batch(requests) -> list[BookingResult]``
    Book several items; one result per request, in the same order. The default calls ``book``
    for each; an accounting system with a batch endpoint overrides it. The lifecycle books
    through ``book_batch`` (up to the adapter's ``max_batch`` items a call) only when the
    adapter's own class defines it with its ``book``; otherwise it calls ``book`` per item (a
    subclass that overrides only ``book`` is booked one by one).

``lookup(*, idempotency_key=None, accounting_entry_id=None) -> BookingResult | None``
    Find an earlier booking: by our idempotency key (after an interruption between ``book`` and
    the recording of its answer) or by Pleo's ``accountingEntryId`` (a re-exported expense comes
    in a new job, with a new key). Either may be given; the key is asked first. The result of
    the booking found, or None. An adapter that cannot tell raises :class:`LookupUnsupported`;
    the lifecycle then reports an interrupted item ``failed`` (``unexpected_failure``) and never
    books it again, so nothing is booked twice. The lifecycle asks by key here.

``lookup_entries(accounting_entry_ids) -> dict[id, BookingResult]``
    ``lookup(accounting_entry_id=…)`` for many ids at once: the earlier booking of each id that
    has one (absent: none). The lifecycle asks it once per page of items before booking, so a
    re-exported expense is reported with its earlier booking instead of being booked again
    (``exports.services.settlement``). The default asks ``lookup`` once per id; an adapter
    that can ask in one request (the journal: one query) overrides it. ``LookupUnsupported``:
    the adapter cannot tell (the check is skipped; ``book`` stays responsible).

``booking_summary(request) -> LedgerSummary | None`` and ``read_back(external_ids)``
    For the reconciliation report (``exports.services.reconciliation``): what a booking of the
    request amounts to in the ledger (total in minor units, currency, the accounts it touches),
    stored on the item's record when it is booked; and the ledger's documents now, by our
    external ids (``dict[external_id, LedgerDocument]``; absent: missing or deleted). The default
    summary is Pleo's wallet total and the accounts of the lines, tax and contra account; the
    default ``read_back`` raises :class:`ReadBackUnsupported` (then nothing is matched). A
    ``read_back`` that could not ask the ledger now raises :class:`ReadBackUnavailable` (the
    report says so for each of its bookings; none is called missing).

``summary_source`` and ``unrecorded_summary_source``
    What ``booking_summary`` computes its summary from
    (:class:`~exports.choices.BookedSummarySource`), stored with the summary on the item's
    record; and what the summaries this adapter stored before the source was kept were computed
    from (a record with a blank source). The report compares amounts and accounts only where
    the stored source is the adapter's ``summary_source``; elsewhere it checks the booking's
    existence alone (``present_not_compared``). Default: both ``pleo_item`` (the default
    summary). An adapter that changes what its summary means gets a new source, so what it
    stored before is never compared in the wrong terms (Xero: ``booked_document`` now, and its
    unrecorded summaries are Pleo's, from before it had its own ``booking_summary``).

``attachment_limits: AttachmentLimits``
    What the accounting system accepts as attachments (receipts): largest file, most files,
    MIME types. :meth:`AttachmentLimits.judge` says which file breaks which limit, so the
    lifecycle can refuse an item before booking. The default accepts no attachment.

``estimate_calls(requests, *, first_alone=False) -> CallEstimate | None`` and
``call_room(*, seconds, at_once=1) -> CallRoom | None``
    For an accounting system behind request limits: the external calls booking ``requests`` (the
    items still to book, in booking order) will make, counted as the adapter really calls
    (``first_alone``: the lifecycle books the first item as a batch of its own), and how many
    calls its budgets allow within ``seconds`` from now (and when the budgets it does not wait
    for, a day's, grant ``at_once`` calls at once). The lifecycle compares them before it
    books (``exports.services.expiry_guard``) and books only the items whose calls fit before
    the job's deadline. The default is None for both: no estimate (the journal).

``selectable`` is False for an adapter that exists (registered, testable) but may not be chosen
for a company yet: the admin does not list it and its ``validate`` refuses every job.

``writes_locally`` is True only for adapters that write to our own database and nowhere else:
their ``book_batch`` (or ``book``) runs inside the run's transaction, together with our records
of the items (a report chunk at a time), so the entries and the records of them are committed
together or not at all. Such a batch that raises is rolled back whole and its items are booked
again one by one, so only the item at fault fails.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, ClassVar

from exports.choices import BookedSummarySource
from exports.pleo import ItemFailureReasonType, JobFailureReasonType


class LookupUnsupported(Exception):
    """The adapter cannot tell whether an earlier attempt booked an item."""


class AdapterUnavailable(Exception):
    """The accounting system could not be reached; nothing was booked. Try again later."""


class ReadBackUnsupported(Exception):
    """The adapter cannot read its bookings back from the accounting system (yet)."""


class ReadBackUnavailable(Exception):
    """The accounting system could not be read now (unreachable, refused, its limits spent):
    nothing is known of the bookings asked about. ``str()`` says why and what to do."""


class UnknownAdapter(LookupError):
    """No adapter is registered under that name."""


@dataclass(frozen=True)
class _Verdict:
    """Passed, or failed with a failure type (of ``failure_types``) and a message."""

    failure_types: ClassVar[type[enum.StrEnum]]
    ok: bool
    failure_type: Any = None
    message: str = ""

    @classmethod
    def passed(cls, message: str = ""):
        return cls(ok=True, message=message)

    @classmethod
    def failed(cls, failure_type: enum.StrEnum | str, message: str):
        return cls(ok=False, failure_type=cls.failure_types(failure_type), message=message)


@dataclass(frozen=True)
class ValidationResult(_Verdict):
    """The answer of ``validate``: a job failure type when failed."""

    failure_types = JobFailureReasonType
    failure_type: JobFailureReasonType | None = None


@dataclass(frozen=True)
class ItemCheck(_Verdict):
    """The answer of ``precheck``: an item failure type when failed."""

    failure_types = ItemFailureReasonType
    failure_type: ItemFailureReasonType | None = None

    def as_result(self) -> BookingResult:
        """The failed check as the item's (not booked) result."""
        assert not self.ok, "a passed check is not a booking result"
        return BookingResult.failure(self.failure_type, self.message)


@dataclass(frozen=True)
class BookingResult:
    booked: bool
    external_id: str = ""
    external_url: str = ""
    exported_at: datetime | None = None
    failure_type: ItemFailureReasonType | None = None
    message: str = ""

    @classmethod
    def success(
        cls, *, external_id: str, external_url: str = "", exported_at: datetime | None = None
    ) -> BookingResult:
        return cls(
            booked=True,
            external_id=external_id,
            external_url=external_url,
            exported_at=exported_at,
        )

    @classmethod
    def failure(cls, failure_type: ItemFailureReasonType | str, message: str) -> BookingResult:
        return cls(booked=False, failure_type=ItemFailureReasonType(failure_type), message=message)


@dataclass(frozen=True)
class ReceiptFile:
    """One receipt to attach: its metadata, and ``open()`` for its bytes (binary, read-only;
    the caller closes it). ``opener`` is whatever gives the bytes (Django storage, later)."""

    name: str
    content_type: str
    size: int
    sha256: str
    opener: Callable[[], IO[bytes]] = field(repr=False, compare=False)

    def open(self) -> IO[bytes]:
        return self.opener()


@dataclass(frozen=True)
class BookingRequest:
    """One item to check or book: Pleo's ``ExportItemV3`` as a dict (``ExportItem.raw``), our
    idempotency key for it, the export job's Pleo id, and its receipts (empty for now)."""

    item: Mapping[str, Any]
    idempotency_key: str
    pleo_job_id: uuid.UUID | str
    receipts: tuple[ReceiptFile, ...] = ()

    @property
    def accounting_entry_id(self) -> Any:
        """Pleo's ``accountingEntryId`` as it came (None when the item has none)."""
        return self.item.get("accountingEntryId") if isinstance(self.item, Mapping) else None


@dataclass(frozen=True)
class LedgerSummary:
    """A booking as the ledger holds it: total (minor units), currency and accounts (sorted)."""

    amount: int | None
    currency: str
    accounts: tuple[str, ...]

    @property
    def accounts_text(self) -> str:
        return ",".join(self.accounts)


@dataclass(frozen=True)
class LedgerDocument:
    """One booking read back from the ledger: its summary now, and the external ids of other
    documents booked for the same Pleo expense (``duplicates``)."""

    external_id: str
    summary: LedgerSummary
    duplicates: tuple[str, ...] = ()


def _account_code(account: Any) -> str:
    if isinstance(account, Mapping):
        for key in ("code", "identifier"):
            value = account.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:100]
    return account.strip()[:100] if isinstance(account, str) else ""


def pleo_booking_summary(item: Mapping[str, Any]) -> LedgerSummary | None:
    """Pleo's wallet total and every account an item's lines, tax and contra account name."""
    try:
        wallet = item["amount"]["inWalletCurrency"]
        amount, currency = int(wallet["value"]), str(wallet["currency"])
    except (KeyError, TypeError, ValueError):
        return None
    accounts = {_account_code(item.get("contraAccount"))}
    for line in item.get("accountingEntryLines") or []:
        if isinstance(line, Mapping):
            accounts.add(_account_code(line.get("account")))
            tax = line.get("tax") if isinstance(line.get("tax"), Mapping) else {}
            accounts.add(_account_code(tax.get("ingoingTaxAccount")))
    return LedgerSummary(amount, currency, tuple(sorted(accounts - {""})))


@dataclass(frozen=True)
class CallEstimate:
    """The external calls booking a list of items makes: ``item_calls[i]`` is what item ``i``
    adds (its share of a batch write, its reads, its attachments), in booking order."""

    item_calls: tuple[int, ...]
    writes: int
    attachments: int
    reads: int

    @property
    def total(self) -> int:
        return sum(self.item_calls)

    def items_within(self, calls: int) -> int:
        """How many of the items, from the first, are booked within ``calls`` calls."""
        spent = 0
        for count, needs in enumerate(self.item_calls):
            spent += needs
            if spent > calls:
                return count
        return len(self.item_calls)

    def describe(self) -> str:
        return (
            f"{self.total} calls ({self.writes} batch writes, {self.attachments} attachments, "
            f"{self.reads} reads)"
        )


@dataclass(frozen=True)
class CallRoom:
    """What the adapter's request budgets allow: ``calls`` within the time asked about,
    ``now`` at once from the budgets that are not waited for (a day's), ``ready_at`` when those
    have room again, and the budgets as people read them."""

    calls: int
    now: int
    ready_at: datetime
    description: str


class AttachmentLimit(enum.StrEnum):
    """Which limit of :class:`AttachmentLimits` a file breaks."""

    SIZE = "size"
    CONTENT_TYPE = "content_type"
    COUNT = "count"


# The item failure type Pleo knows for each broken limit.
LIMIT_FAILURE_TYPES = {
    AttachmentLimit.SIZE: ItemFailureReasonType.RECEIPT_FILE_SIZE_LIMIT_EXCEEDED,
    AttachmentLimit.CONTENT_TYPE: ItemFailureReasonType.RECEIPT_CONVERSION_FAILURE,
    AttachmentLimit.COUNT: ItemFailureReasonType.RECEIPT_UPLOAD_FAILURE,
}


@dataclass(frozen=True)
class AttachmentProblem:
    """File number ``position`` (from 1) of an item, named ``name``, breaks ``limit``."""

    position: int
    name: str
    limit: AttachmentLimit
    message: str

    @property
    def failure_type(self) -> ItemFailureReasonType:
        return LIMIT_FAILURE_TYPES[self.limit]


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


@dataclass(frozen=True)
class AttachmentLimits:
    """What an accounting system accepts as attachments. None: no limit."""

    max_bytes: int | None = None
    max_count: int | None = None
    content_types: frozenset[str] | None = None

    def judge(
        self, files: Iterable[ReceiptFile | tuple[int, str]]
    ) -> tuple[AttachmentProblem, ...]:
        """Every limit each file breaks, in file order (empty: all may be attached). A file is a
        :class:`ReceiptFile` or a ``(size, content_type)`` pair; content types are compared
        without parameters and case."""
        problems: list[AttachmentProblem] = []
        for position, file in enumerate(files, start=1):
            if isinstance(file, ReceiptFile):
                name, size, content_type = file.name, file.size, file.content_type
            else:
                (size, content_type), name = file, f"File {position}"
            if self.max_count is not None and position > self.max_count:
                problems.append(
                    AttachmentProblem(
                        position,
                        name,
                        AttachmentLimit.COUNT,
                        f"{name} is one receipt too many: at most {self.max_count} can be "
                        f"attached. Remove receipts from the expense in Pleo and export it again.",
                    )
                )
            if self.max_bytes is not None and size > self.max_bytes:
                problems.append(
                    AttachmentProblem(
                        position,
                        name,
                        AttachmentLimit.SIZE,
                        f"{name} is {_megabytes(size)}, larger than the "
                        f"{_megabytes(self.max_bytes)} allowed. Replace it with a smaller file "
                        f"in Pleo and export the expense again.",
                    )
                )
            bare_type = (content_type or "").split(";")[0].strip().lower()
            if self.content_types is not None and bare_type not in self.content_types:
                problems.append(
                    AttachmentProblem(
                        position,
                        name,
                        AttachmentLimit.CONTENT_TYPE,
                        f"{name} is of type {bare_type or 'unknown'}, which cannot be attached "
                        f"(allowed: {', '.join(sorted(self.content_types))}). Replace it in "
                        f"Pleo and export the expense again.",
                    )
                )
        return tuple(problems)


NO_ATTACHMENTS = AttachmentLimits(max_count=0)

# Pleo's own limits on receipt files: 30 MB each, these types, any number.
PLEO_ATTACHMENT_LIMITS = AttachmentLimits(
    max_bytes=30 * 1024 * 1024,
    max_count=None,
    content_types=frozenset(
        {
            "application/pdf",
            "image/jpeg",
            "image/png",
            "application/msword",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.ms-excel",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "text/plain",
        }
    ),
)


class AccountingAdapter:
    """Base class of every adapter; see the module docstring for the contract."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    supports_vendor_based_bookkeeping: ClassVar[bool] = False
    writes_locally: ClassVar[bool] = False
    selectable: ClassVar[bool] = True
    attachment_limits: ClassVar[AttachmentLimits] = NO_ATTACHMENTS
    summary_source: ClassVar[BookedSummarySource] = BookedSummarySource.PLEO_ITEM
    unrecorded_summary_source: ClassVar[BookedSummarySource] = BookedSummarySource.PLEO_ITEM

    def __init__(self, *, company: Any, job: Any = None) -> None:
        self.company = company
        self.job = job

    def validate(self, job: Any) -> ValidationResult:
        """The checks every adapter shares; subclasses add theirs and call this first."""
        if not self.selectable:
            return ValidationResult.failed(
                JobFailureReasonType.INVALID_CONFIGURATION,
                f"The accounting adapter '{self.name}' ({self.label}) cannot book exports yet. "
                f"Choose another accounting adapter for the company in the bridge's admin "
                f"(Company → Accounting adapter), then export again.",
            )
        if getattr(job, "vendor_based_bookkeeping", False) and not (
            self.supports_vendor_based_bookkeeping
        ):
            return ValidationResult.failed(
                JobFailureReasonType.INVALID_CONFIGURATION,
                f"This export uses vendor-based bookkeeping, which {self.label} does not "
                f"support. Turn vendor-based bookkeeping off in Pleo's accounting settings or "
                f"choose another accounting adapter for the company, then export again.",
            )
        return ValidationResult.passed()

    def precheck(self, request: BookingRequest) -> ItemCheck:
        return ItemCheck.passed()

    def book(self, request: BookingRequest) -> BookingResult:
        raise NotImplementedError

    def book_batch(self, requests: Sequence[BookingRequest]) -> list[BookingResult]:
        return [self.book(request) for request in requests]

    def lookup(
        self,
        *,
        idempotency_key: str | None = None,
        accounting_entry_id: uuid.UUID | str | None = None,
    ) -> BookingResult | None:
        raise LookupUnsupported(f"{self.label} cannot look up earlier bookings.")

    def booking_summary(self, request: BookingRequest) -> LedgerSummary | None:
        return pleo_booking_summary(request.item)

    def read_back(self, external_ids: Sequence[str]) -> dict[str, LedgerDocument]:
        raise ReadBackUnsupported(f"{self.label} cannot read its bookings back yet.")

    def estimate_calls(
        self, requests: Sequence[BookingRequest], *, first_alone: bool = False
    ) -> CallEstimate | None:
        return None

    def call_room(self, *, seconds: float, at_once: int = 1) -> CallRoom | None:
        return None

    def lookup_entries(
        self, accounting_entry_ids: Iterable[uuid.UUID | str]
    ) -> dict[uuid.UUID | str, BookingResult]:
        found = {}
        for entry_id in accounting_entry_ids:
            result = self.lookup(accounting_entry_id=entry_id)
            if result is not None:
                found[entry_id] = result
        return found
