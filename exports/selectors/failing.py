"""Reads of the failing state for pages: one sentence per company or job, e.g.
"failing since 2025-01-06 12:14:05 UTC, 5 attempts, next retry at 2025-01-06 12:23:00 UTC, last
error: …", and a company's recent jobs and audit entries.

Callers pass a company the user may see (the admin's scoped queryset); its jobs and audit entries
are that company's own.
"""

from __future__ import annotations

from datetime import datetime

from exports.models import AuditEntry, Company, ExportJob
from exports.services.lifecycle_common import State
from exports.timestamps import absolute

RECENT_JOBS = 10
RECENT_AUDIT = 15
ERROR_SHOWN = 500


def _at(value: datetime) -> str:
    """With seconds and the zone shown (``DISPLAY_TIME_ZONE``)."""
    return absolute(value)


def _short(text: str, limit: int = ERROR_SHOWN) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def failing_text_for(*, obj: Company | ExportJob) -> str:
    """The failing state of a company or a job in words; "" when it is not failing."""
    if obj.failing_since is None:
        return ""
    attempts = obj.attempts
    if (
        isinstance(obj, ExportJob)
        and obj.next_retry_at is None
        and obj.processing_state == State.DONE
    ):
        # Final in Pleo: no retry is coming.
        text = f"ended badly ({obj.status}) after failing since {_at(obj.failing_since)}"
    else:
        text = f"failing since {_at(obj.failing_since)}"
    if attempts:
        text += f", {attempts} attempt{'' if attempts == 1 else 's'}"
    if obj.next_retry_at is not None:
        text += f", next retry at {_at(obj.next_retry_at)}"
    if obj.last_error:
        text += f", last error: {_short(obj.last_error)}"
    return text


def company_failing_job(*, company: Company) -> ExportJob | None:
    """The company's unfinished job whose runs are failing (the oldest), if any."""
    return (
        ExportJob.objects.filter(
            company=company,
            failing_since__isnull=False,
            status__in=[ExportJob.Status.PENDING, ExportJob.Status.IN_PROGRESS],
        )
        .order_by("failing_since")
        .first()
    )


def company_failing_text(*, company: Company) -> str:
    """The company's failing state, else a failing unfinished job's (never "fine" while a job of
    the company is failing)."""
    text = failing_text_for(obj=company)
    if text:
        return text
    job = company_failing_job(company=company)
    if job is not None:
        return f"job {job.pleo_job_id} {failing_text_for(obj=job)}"
    return ""


def company_recent_jobs(*, company: Company, limit: int = RECENT_JOBS) -> list[ExportJob]:
    return list(ExportJob.objects.filter(company=company).order_by("-created_at", "-id")[:limit])


def company_recent_audit(*, company: Company, limit: int = RECENT_AUDIT) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.filter(company=company)
        .select_related("export_job")
        .order_by("-created_at", "-id")[:limit]
    )
