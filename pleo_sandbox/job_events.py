"""Job events and expiry: Pleo's transition table applied to a job, each job's event log, and the
lazy expiry sweep.

* :func:`apply_event` applies one event (``started``, ``failed``, ``completed``,
  ``completed_with_errors``) by :data:`pleo_sandbox.entities.TRANSITIONS` and the
  ``failed_on_pending``/``started_on_in_progress`` switches; refused events are recorded too.
* :func:`sweep` expires every unfinished job whose last action is ``expiresIn`` (plus the
  ``expiry_lag_seconds`` switch) old. It runs at the start of every operation and whenever the
  clock or the switches change, so expiry never needs a timer.

Every function here runs under the store's lock (the caller holds it).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pleo_sandbox import variants
from pleo_sandbox.clock import iso
from pleo_sandbox.entities import (
    EXPIRY_SWEEPER,
    FINAL_EVENTS,
    JOB_EVENTS,
    JOB_FAILURE_REASON_TYPES,
    MSG_EXPIRED,
    TRANSITIONS,
    UNFINISHED_ITEM_STATUSES,
    Job,
)
from pleo_sandbox.errors import ApiError
from pleo_sandbox.fields import bad_request, enum_field, optional_str, uuid_field
from pleo_sandbox.store import Store
from pleo_sandbox.vocabulary import ItemStatus, JobEvent, JobStatus


def sweep(store: Store) -> None:
    """Expire every unfinished job whose last action is ``expiresIn`` (+ lag) seconds old."""
    now = store.clock.now()
    lag = timedelta(seconds=float(store.switch("expiry_lag_seconds")))
    for job in store.jobs.values():
        if job.finished:
            continue
        reference = job.last_updated_at or job.created_at
        deadline = reference + timedelta(seconds=job.expires_in)
        if now < deadline + lag:
            continue
        before = job.status
        job.status, job.failure_reason_type, job.failure_reason = variants.expired_fields(
            bool(store.switch("expired_status")), MSG_EXPIRED
        )
        job.expired_at = deadline + lag
        abandon_items(job)
        job.events.append(
            {
                "at": iso(job.expired_at),
                "event": JobEvent.EXPIRED,
                "identity": EXPIRY_SWEEPER,
                "accepted": True,
                "statusBefore": before,
                "statusAfter": job.status,
                "failureReason": job.failure_reason,
                "failureReasonType": job.failure_reason_type,
                "requestId": None,
            }
        )


def abandon_items(job: Job) -> None:
    for item in job.items.values():
        if item.status in UNFINISHED_ITEM_STATUSES:
            item.status = ItemStatus.ABANDONED


def event_record(
    store: Store,
    job: Job,
    event: JobEvent,
    identity: str,
    accepted: bool,
    before: JobStatus | None,
    failure_reason: str | None = None,
    failure_reason_type: str | None = None,
    request_id: str | None = None,
) -> dict:
    """One entry of a job's event log (the control API's ``get_job(...)["events"]``)."""
    return {
        "at": iso(store.clock.now()),
        "event": event,
        "identity": identity,
        "accepted": accepted,
        "statusBefore": before,
        "statusAfter": job.status,
        "failureReason": failure_reason,
        "failureReasonType": failure_reason_type,
        "requestId": request_id,
    }


def apply_event(
    store: Store,
    job: Job,
    event: JobEvent,
    identity: str,
    failure_reason: str | None,
    failure_reason_type: str | None,
    request_id: str | None,
) -> bool:
    """Apply one job event; record it; return whether it was accepted."""
    now = store.clock.now()
    before = job.status
    target = TRANSITIONS.get((before, event))
    if target is None and (before, event) == (JobStatus.PENDING, JobEvent.FAILED):
        if store.switch("failed_on_pending") == "202":
            target = JobStatus.FAILED
    started_again_ok = store.switch("started_on_in_progress") == "202"
    idempotent = (before, event) == (JobStatus.IN_PROGRESS, JobEvent.STARTED) and started_again_ok
    accepted = target is not None or idempotent
    if target is not None:
        job.status = target
        if event == JobEvent.STARTED:
            job.started_at = now
        if event in FINAL_EVENTS:
            job.completed_at = now
        if event == JobEvent.FAILED:
            job.failure_reason = failure_reason
            job.failure_reason_type = failure_reason_type
            abandon_items(job)
    if accepted:
        job.last_updated_at = now
    job.events.append(
        event_record(
            store,
            job,
            event,
            identity,
            accepted,
            before,
            failure_reason,
            failure_reason_type,
            request_id,
        )
    )
    return accepted


def parse_event_body(body: Any) -> dict:
    """The body of ``POST /v3/export-job-events``, checked (400 on a mistake)."""
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object.")
    parsed = {
        "jobId": uuid_field(body.get("jobId"), "jobId"),
        "event": JobEvent(enum_field(body.get("event"), JOB_EVENTS, "event")),
        "failureReason": optional_str(body, "failureReason"),
        "failureReasonType": None,
    }
    if body.get("failureReasonType") is not None:
        parsed["failureReasonType"] = enum_field(
            body["failureReasonType"], JOB_FAILURE_REASON_TYPES, "failureReasonType"
        )
    return parsed


def strict_event_check(
    store: Store, job: Job, parsed: dict, identity: str, request_id: str | None
) -> None:
    """The ``strict_final_event`` switch: refuse (and record) what a strict Pleo would."""
    try:
        variants.check_event(
            strict=bool(store.switch("strict_final_event")),
            event=parsed["event"],
            has_failure_fields=parsed["failureReason"] is not None
            or parsed["failureReasonType"] is not None,
            unfinished_items=sum(i.status in UNFINISHED_ITEM_STATUSES for i in job.items.values()),
            job_status=job.status,
        )
    except ApiError:
        job.events.append(
            event_record(
                store,
                job,
                parsed["event"],
                identity,
                False,
                job.status,
                parsed["failureReason"],
                parsed["failureReasonType"],
                request_id,
            )
        )
        raise
