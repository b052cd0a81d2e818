"""Repeated failures are never silent.

A company and a job carry ``failing_since``, ``attempts``, ``next_retry_at`` and ``last_error``:

* every run that failed (outcome ``failed``) or left a job of ours unfinished (paused on a 5xx, a
  429, an unreachable accounting system, a spent request budget …) counts one attempt, keeps the
  first failure's time, records its reason and when the next try is expected;
* a run that neither failed nor left work unfinished clears them (a job: once it is final).

The audit table stays append-only: the same failure again writes no new row, unless the error
changed or the last row saying it is an hour old or more (:data:`REAUDIT_AFTER`, on the product's
clock), so a lasting failure shows in the audit at least once an hour; every attempt is counted
on the company and the job, and logged.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Value
from django.db.models.functions import Coalesce

from exports import audit, clock
from exports.audit import HttpCall
from exports.models import AuditEntry, AuditStep, Company, ExportJob

REAUDIT_AFTER = timedelta(hours=1)
MAX_ERROR = 2000
_OURS = (ExportJob.Claim.OURS, ExportJob.Claim.STARTING, ExportJob.Claim.ADOPTED)


def job_retry_expected_at(
    *, company_id: int, work_pending: bool, not_before: datetime | None, now: datetime
) -> datetime:
    """When the next attempt is expected: the deferred run's time, the recovery sweep's retry
    gap for unfinished work of ours, otherwise the next poll."""
    if not_before is not None:
        return not_before
    ours_unfinished = ExportJob.objects.filter(
        company_id=company_id,
        claim__in=_OURS,
        status__in=[ExportJob.Status.PENDING, ExportJob.Status.IN_PROGRESS],
    ).exists()
    if work_pending or ours_unfinished:
        return now + timedelta(seconds=settings.RECOVERY_RETRY_SECONDS)
    return now + timedelta(minutes=settings.PLEO_POLL_INTERVAL_MINUTES)


def company_check_failure_audit(
    *,
    company: Company,
    trigger: str,
    run_id: uuid.UUID | None,
    error: str,
    http: HttpCall | None = None,
) -> None:
    """The audit row of a company's failed check (step ``error``, outcome ``error``)."""
    audit.record(
        company=company,
        trigger=trigger,
        step=AuditStep.ERROR,
        message=error,
        run_id=run_id,
        outcome=AuditEntry.Outcome.ERROR,
        http=http,
    )


def job_failing_fields(
    *,
    company_id: int,
    failing: bool,
    error: str,
    work_pending: bool = False,
    not_before: datetime | None = None,
    now: datetime | None = None,
) -> dict:
    """The company's failing-state columns, as ``update()`` keyword arguments (atomic: the
    attempt count is incremented in SQL), for the statement that records the run's outcome."""
    if not failing:
        return {"failing_since": None, "attempts": 0, "next_retry_at": None, "last_error": ""}
    now = now or clock.now()
    return {
        "failing_since": Coalesce(F("failing_since"), Value(now)),
        "attempts": F("attempts") + 1,
        "next_retry_at": job_retry_expected_at(
            company_id=company_id, work_pending=work_pending, not_before=not_before, now=now
        ),
        "last_error": (error or "The run stopped without saying why.")[:MAX_ERROR],
    }


def job_failing_record(*, job: ExportJob, error: str, next_retry_at: datetime | None) -> None:
    """One more failed attempt on ``job`` (in the caller's transaction); ``job`` is refreshed."""
    now = clock.now()
    ExportJob.objects.filter(pk=job.pk).update(
        failing_since=Coalesce(F("failing_since"), Value(now)),
        attempts=F("attempts") + 1,
        next_retry_at=next_retry_at,
        last_error=error[:MAX_ERROR],
    )
    job.refresh_from_db(fields=["failing_since", "attempts", "next_retry_at", "last_error"])


def job_failing_end(*, job: ExportJob, error: str = "") -> None:
    """``job`` is final: no retry is coming. Without ``error`` (it ended well) the failing state
    is cleared; with one (it ended badly) the reason stays, with the attempts that led there."""
    if error:
        fields = {
            "failing_since": job.failing_since or clock.now(),
            "next_retry_at": None,
            "last_error": error[:MAX_ERROR],
        }
    else:
        fields = {"failing_since": None, "attempts": 0, "next_retry_at": None, "last_error": ""}
    if all(getattr(job, name) == value for name, value in fields.items()):
        return
    ExportJob.objects.filter(pk=job.pk).update(**fields)
    for name, value in fields.items():
        setattr(job, name, value)


def audit_again_due(
    *, company_id: int, job: ExportJob | None, step: AuditStep, message: str
) -> bool:
    """Whether a repeated failure gets a new audit row: yes unless the last ERROR row of the job
    (or, without a job, of the company) is ``step`` with this very ``message``, written less
    than :data:`REAUDIT_AFTER` ago."""
    entries = AuditEntry.objects.filter(outcome=AuditEntry.Outcome.ERROR)
    if job is not None:
        entries = entries.filter(export_job=job)
    else:
        entries = entries.filter(company_id=company_id)
    previous = entries.order_by("-id").only("step", "message", "created_at").first()
    if previous is None or previous.step != step or previous.message != message:
        return True
    return clock.now() - previous.created_at >= REAUDIT_AFTER
