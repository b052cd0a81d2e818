"""Pleo's enums (§4 of ``docs/pleo-export-api.md``), and how we read the values Pleo sends us.

Read generously: one unexpected value from Pleo must never make a response unreadable.

* A job status, item status or failure type we do not know parses to the enum's ``UNKNOWN``
  member; the resource keeps the raw string beside it (``raw_status``, ``failure_reason_type``).
  ``UNKNOWN`` is ours, never Pleo's: the client refuses to send it.
* Values are matched exactly first, then case-insensitively (``IN_PROGRESS`` is ``in_progress``).
* The job status ``expired`` (one Pleo page says an expired job "moves to expired"; the v3 enum has
  no such value) is read as what the enum documents for it: ``failed`` with ``job_expired``.
* Error ``type`` codes are compared case-insensitively (:func:`error_type_is`): Pleo's pages show
  both ``INVALID_EXPORT_JOB_STATUS_CHANGE`` and ``missing_contra_accounts``.

This module imports nothing from ``exports``; :mod:`exports.pleo` re-exports its public names.
"""

from __future__ import annotations

import enum
from typing import TypeVar

UNKNOWN_VALUE = "unknown"
# The job status some of Pleo's pages give an expired job, read as failed/job_expired.
EXPIRED_JOB_STATUS = "expired"

E = TypeVar("E", bound=enum.StrEnum)


class JobStatus(enum.StrEnum):
    """``ExportJobStatus`` (§4.1), plus ``UNKNOWN`` for a value the enum does not have (the raw
    string is kept in ``ExportJob.raw_status``). ``expired`` is read as ``FAILED``."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    FAILED = "failed"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    UNKNOWN = UNKNOWN_VALUE


TERMINAL_JOB_STATUSES = frozenset(
    {JobStatus.FAILED, JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS}
)
UNFINISHED_JOB_STATUSES = (JobStatus.PENDING, JobStatus.IN_PROGRESS)


class JobEvent(enum.StrEnum):
    """``ExportJobEventType`` (§4.2): what ``POST /v3/export-job-events`` accepts."""

    STARTED = "started"
    FAILED = "failed"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"


class JobFailureReasonType(enum.StrEnum):
    """``ExportJobFailureReasonType`` (§4.3), plus ``UNKNOWN`` (read only, never sent)."""

    INVALID_CONFIGURATION = "invalid_configuration"
    MISSING_CONFIGURATION = "missing_configuration"
    AUTHENTICATION_FAILURE = "authentication_failure"
    ACCOUNTING_SYSTEM_AUTHENTICATION_FAILURE = "accounting_system_authentication_failure"
    PLEO_RATE_LIMIT = "pleo_rate_limit"
    ACCOUNTING_SYSTEM_RATE_LIMIT = "accounting_system_rate_limit"
    SERVICE_UNREACHABLE = "service_unreachable"
    ACCOUNTING_SYSTEM_UNREACHABLE = "accounting_system_unreachable"
    VALIDATION_FAILURE = "validation_failure"
    AUTHORIZATION_FAILURE = "authorization_failure"
    INTEGRATION_UNUSABLE = "integration_unusable"
    JOB_EXPIRED = "job_expired"
    SERVICE_TIMEOUT = "service_timeout"
    ACCOUNTING_SYSTEM_TIMEOUT = "accounting_system_timeout"
    CANCELED_BY_USER = "canceled_by_user"
    UNKNOWN = UNKNOWN_VALUE


class ItemStatus(enum.StrEnum):
    """``ExportJobItemStatus`` (§4.4), plus ``UNKNOWN`` (raw in ``ExportJobItem.raw_status``)."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    FAILED = "failed"
    SUCCESSFUL = "successful"
    ABANDONED = "abandoned"
    UNKNOWN = UNKNOWN_VALUE


class ItemFailureReasonType(enum.StrEnum):
    """``ExportJobItemFailureReasonType`` (§4.5), plus ``UNKNOWN`` (read only, never sent)."""

    RECEIPT_UPLOAD_FAILURE = "receipt_upload_failure"
    RECEIPT_DOWNLOAD_FAILURE = "receipt_download_failure"
    RECEIPT_FILE_SIZE_LIMIT_EXCEEDED = "receipt_file_size_limit_exceeded"
    RECEIPT_CONVERSION_FAILURE = "receipt_conversion_failure"
    UNEXPECTED_FAILURE = "unexpected_failure"
    INVALID_CONFIGURATION = "invalid_configuration"
    MISSING_CONFIGURATION = "missing_configuration"
    ACCOUNTING_SYSTEM_AUTHENTICATION_FAILURE = "accounting_system_authentication_failure"
    ACCOUNTING_SYSTEM_RATE_LIMIT = "accounting_system_rate_limit"
    ACCOUNTING_SYSTEM_UNREACHABLE = "accounting_system_unreachable"
    VALIDATION_FAILURE = "validation_failure"
    ACCOUNTING_SYSTEM_VALIDATION_FAILURE = "accounting_system_validation_failure"
    AUTHORIZATION_FAILURE = "authorization_failure"
    ACCOUNTING_SYSTEM_TIMEOUT = "accounting_system_timeout"
    VENDOR_UNKNOWN = "vendor_unknown"
    ACCOUNT_UNKNOWN = "account_unknown"
    TAX_CODE_UNKNOWN = "tax_code_unknown"
    TAG_UNKNOWN = "tag_unknown"
    UNKNOWN = UNKNOWN_VALUE


class ErrorType(enum.StrEnum):
    """Values of the ``type`` field of Pleo's error bodies (§6.1). ``error_type`` stays the plain
    string Pleo sent (unknown values pass through): compare with :func:`error_type_is`, which
    ignores case, never with ``==``."""

    MISSING_CONTRA_ACCOUNTS = "MISSING_CONTRA_ACCOUNTS"
    EXPORT_NOT_FOUND = "EXPORT_NOT_FOUND"
    EXPORT_ENTRY_NOT_FOUND = "EXPORT_ENTRY_NOT_FOUND"
    EXPORT_ALREADY_IN_PROGRESS = "EXPORT_ALREADY_IN_PROGRESS"
    EXPORT_JOB_ITEMS_UPDATE_LIMIT = "EXPORT_JOB_ITEMS_UPDATE_LIMIT"
    INVALID_EXPORT_JOB_STATUS_CHANGE = "INVALID_EXPORT_JOB_STATUS_CHANGE"
    EXPORT_JOB_STATUS_UNPROCESSABLE = "EXPORT_JOB_STATUS_UNPROCESSABLE"
    ACCOUNTING_ENTRY_DOES_NOT_EXIST = "ACCOUNTING_ENTRY_DOES_NOT_EXIST"


class SubscriptionStatus(enum.StrEnum):
    """Status of a webhook subscription (§5.4)."""

    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class WebhookEventType(enum.StrEnum):
    """Event types to subscribe with (§5.1: subscribe with ``v1.export-job.created``)."""

    EXPORT_JOB_CREATED = "v1.export-job.created"
    VENDOR_CREATED = "v1.vendor.created"


# --- Reading values Pleo sent ---------------------------------------------------------------------


def read_enum(enum_cls: type[E], value: str) -> E:
    """The member of ``enum_cls`` for ``value``: exact match, else case-insensitive, else the
    enum's ``UNKNOWN`` member (the caller keeps ``value`` as the raw string)."""
    try:
        return enum_cls(value)
    except ValueError:
        pass
    folded = value.strip().casefold()
    for member in enum_cls:
        if member.value.casefold() == folded:
            return member
    return enum_cls(UNKNOWN_VALUE)


def read_job_status(value: str) -> JobStatus:
    """A job status as the product uses it: ``expired`` reads as ``FAILED`` (see the module
    docstring); the failure type that goes with it is :func:`implied_failure_type`."""
    if value.strip().casefold() == EXPIRED_JOB_STATUS:
        return JobStatus.FAILED
    return read_enum(JobStatus, value)


def implied_failure_type(raw_status: str, failure_reason_type: str | None) -> str | None:
    """``job_expired`` for an ``expired`` job that names no failure type of its own."""
    if failure_reason_type is None and raw_status.strip().casefold() == EXPIRED_JOB_STATUS:
        return JobFailureReasonType.JOB_EXPIRED.value
    return failure_reason_type


def read_failure_type(enum_cls: type[E], value: str | None) -> E | None:
    """A failure type Pleo sent (None when it sent none), ``UNKNOWN`` when we do not know it."""
    return None if value is None else read_enum(enum_cls, value)


def known(member: enum.StrEnum) -> bool:
    """False for the ``UNKNOWN`` member of any of these enums."""
    return member.value != UNKNOWN_VALUE


def refuse_unknown(member: E, what: str) -> E:
    """``member``, unless it is ``UNKNOWN``: that is never sent to Pleo (ValueError)."""
    if not known(member):
        raise ValueError(f"{what} '{UNKNOWN_VALUE}' is a reading of ours; it is never sent to Pleo")
    return member


def error_type_is(actual: str | None, expected: ErrorType | str) -> bool:
    """Whether Pleo's error ``type`` is ``expected``, ignoring case and surrounding blanks. The one
    way the product compares error types (start, events, item updates, export items)."""
    if not isinstance(actual, str):
        return False
    return actual.strip().casefold() == str(expected).strip().casefold()


__all__ = [
    "ErrorType",
    "ItemFailureReasonType",
    "ItemStatus",
    "JobEvent",
    "JobFailureReasonType",
    "JobStatus",
    "SubscriptionStatus",
    "TERMINAL_JOB_STATUSES",
    "UNFINISHED_JOB_STATUSES",
    "WebhookEventType",
    "error_type_is",
    "known",
    "read_enum",
    "read_failure_type",
    "read_job_status",
]
