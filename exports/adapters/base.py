"""The accounting adapter interface: what the export lifecycle asks of an accounting system.

An adapter is built per company (and per job) by :func:`exports.adapters.get_adapter` and answers
three questions:

``validate(job) -> ValidationResult``
    Pre-export validation, before any item is touched: is the accounting system reachable, is it
    configured, can it do what the job needs (vendor-based bookkeeping when the job's
    ``vendor_based_bookkeeping`` is true)? A failure carries a job ``failureReasonType``
    (:class:`~exports.pleo.enums.JobFailureReasonType`) and a message for the bookkeeper; the
    lifecycle then sends ``failed`` to Pleo and stops.

``export(item, idempotency_key) -> BookingResult``
    Book one export item: ``item`` is Pleo's ``ExportItemV3`` as a dict (``ExportItem.raw``).
    Booked: ``external_id``, ``external_url``, ``exported_at``. Not booked: an item
    ``failureReasonType`` (:class:`~exports.pleo.enums.ItemFailureReasonType`) and a message
    the bookkeeper can act on. ``idempotency_key`` is the same for the same item of the same job
    on every attempt; an adapter that can pass it on to its accounting system should.
    Raise :class:`AdapterUnavailable` when the system could not be reached and nothing was
    booked. Any other exception means "outcome unknown": the item is left for the next run, which
    asks ``lookup`` first.

``lookup(idempotency_key) -> BookingResult | None``
    After an interruption between ``export`` and the recording of its answer: was the item
    booked (its result), or not (None)? An adapter that cannot tell raises
    :class:`LookupUnsupported`; such an item is reported ``failed`` (``unexpected_failure``) and
    never booked again, so nothing is booked twice.

``writes_locally`` is True only for adapters that write to our own database and nowhere else:
their ``export`` runs inside the run's transaction, together with our item record, so an entry
and the record of it are committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from exports.pleo import ItemFailureReasonType, JobFailureReasonType


class LookupUnsupported(Exception):
    """The adapter cannot tell whether an earlier attempt booked an item."""


class AdapterUnavailable(Exception):
    """The accounting system could not be reached; nothing was booked. Try again later."""


class UnknownAdapter(LookupError):
    """No adapter is registered under that name."""


@dataclass(frozen=True)
class ValidationResult:
    ok: bool
    failure_type: JobFailureReasonType | None = None
    message: str = ""

    @classmethod
    def passed(cls, message: str = "") -> ValidationResult:
        return cls(ok=True, message=message)

    @classmethod
    def failed(cls, failure_type: JobFailureReasonType | str, message: str) -> ValidationResult:
        return cls(ok=False, failure_type=JobFailureReasonType(failure_type), message=message)


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


class AccountingAdapter:
    """Base class of every adapter; see the module docstring for the contract."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    supports_vendor_based_bookkeeping: ClassVar[bool] = False
    writes_locally: ClassVar[bool] = False

    def __init__(self, *, company: Any, job: Any = None) -> None:
        self.company = company
        self.job = job

    def validate(self, job: Any) -> ValidationResult:
        """The capability checks every adapter shares; subclasses add theirs and call this."""
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

    def export(self, item: Mapping[str, Any], idempotency_key: str) -> BookingResult:
        raise NotImplementedError

    def lookup(self, idempotency_key: str) -> BookingResult | None:
        raise LookupUnsupported(f"{self.label} cannot look up earlier bookings.")
