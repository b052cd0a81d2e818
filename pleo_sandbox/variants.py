"""Switches for where Pleo's own documents disagree, or say nothing.

Each function here is one switchable reading; the domain (``jobs``, ``job_events``, ``items``,
``subscriptions``, ``store``) calls them with the switch's value.
The switches (defaults first; see README.md "Switches" for the document behind each):

``expired_status``            ``False`` · ``True``: an expired job shows status ``expired`` (what
                              the seed says) instead of ``failed`` + ``job_expired`` (the v3 enum)
``error_type_case``           ``upper`` · ``lower``: the ``type`` of error answers (and of the
                              ``errors[]`` of an item update) in Pleo's older lowercase style
``event_type_spelling``       the name of the "export job created" event, one of
                              :data:`JOB_CREATED_SPELLINGS`: deliveries carry it, and
                              subscriptions show it for whichever spelling they were created with
``put_refreshes_last_updated`` ``True`` · ``False``: whether an item update moves ``lastUpdatedAt``
``strict_final_event``        ``False`` · ``True``: refuse ``completed``/``completed_with_errors``
                              while items are unfinished, and failure fields on any event other
                              than ``failed``
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pleo_sandbox.errors import ApiError
from pleo_sandbox.vocabulary import JobEvent, JobStatus

EXPIRED_STATUS = JobStatus.EXPIRED
ERROR_TYPE_CASES = ("upper", "lower")
# Every spelling of the created event that Pleo's pages use (reference §5.1); the first is the
# one in every machine-readable example, and the one the sandbox uses by default.
JOB_CREATED_SPELLINGS = (
    "v1.export-job.created",
    "export-job.created",
    "v1.export.job-created",
    "v2.export-job.created",
)
VENDOR_CREATED = "v1.vendor.created"

MSG_ITEMS_UNFINISHED = "Export job has items that are not exported yet."
MSG_FAILURE_FIELDS = "failureReason and failureReasonType are only allowed with the 'failed' event."

SWITCH_DEFAULTS: dict[str, Any] = {
    "expired_status": False,
    "error_type_case": "upper",
    "event_type_spelling": JOB_CREATED_SPELLINGS[0],
    "put_refreshes_last_updated": True,
    "strict_final_event": False,
}
BOOL_SWITCHES = ("expired_status", "put_refreshes_last_updated", "strict_final_event")
CHOICE_SWITCHES = {
    "error_type_case": ERROR_TYPE_CASES,
    "event_type_spelling": JOB_CREATED_SPELLINGS,
}


# --- expired_status ---------------------------------------------------------------------------
def expired_fields(expired_status: bool, message: str) -> tuple[JobStatus, str | None, str | None]:
    """``(status, failureReasonType, failureReason)`` of a job that has just expired."""
    if expired_status:
        return EXPIRED_STATUS, None, None
    return JobStatus.FAILED, "job_expired", message


def job_statuses(base: Iterable[str], expired_status: bool) -> tuple[str, ...]:
    """The statuses the ``statuses`` filter accepts: ``expired`` too while it can exist."""
    return (*base, EXPIRED_STATUS) if expired_status else tuple(base)


# --- error_type_case --------------------------------------------------------------------------
def error_type(value: str, case: str) -> str:
    return value.lower() if case == "lower" else value


def with_error_case(body: Any, case: str) -> Any:
    """An error body (``{"type", "message"}``) with its ``type`` in ``case``; other bodies as
    they are."""
    if case != "lower" or not isinstance(body, dict) or not isinstance(body.get("type"), str):
        return body
    return {**body, "type": body["type"].lower()}


# --- event_type_spelling ------------------------------------------------------------------------
def is_job_created(event_type: str) -> bool:
    return event_type in JOB_CREATED_SPELLINGS


def subscribable_event_types() -> tuple[str, ...]:
    return (*JOB_CREATED_SPELLINGS, VENDOR_CREATED)


def shown_event_types(stored: Iterable[str], spelling: str) -> list[str]:
    """A subscription's ``eventTypes`` as the sandbox shows them: any spelling of the created
    event becomes the switch's spelling (duplicates dropped, order kept)."""
    shown = [spelling if is_job_created(t) else t for t in stored]
    return list(dict.fromkeys(shown))


# --- strict_final_event -------------------------------------------------------------------------
def check_event(
    *,
    strict: bool,
    event: str,
    has_failure_fields: bool,
    unfinished_items: int,
    job_status: str,
) -> None:
    """Raise what a strict Pleo would answer to this event; nothing when not strict."""
    if not strict:
        return
    if has_failure_fields and event != JobEvent.FAILED:
        raise ApiError(400, "BAD_REQUEST", MSG_FAILURE_FIELDS)
    if (
        event in (JobEvent.COMPLETED, JobEvent.COMPLETED_WITH_ERRORS)
        and job_status == JobStatus.IN_PROGRESS
        and unfinished_items
    ):
        raise ApiError(422, "INVALID_EXPORT_JOB_STATUS_CHANGE", MSG_ITEMS_UNFINISHED)
