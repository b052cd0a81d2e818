"""Read for the job page: the last estimate of the accounting system's calls for a job (the
expiry guard's ``calls_estimated`` audit entry, ``exports.services.expiry_guard``), and whether
it left items for re-export."""

from __future__ import annotations

from exports.models import AuditEntry, AuditStep, ExportJob
from exports.timestamps import absolute


def job_calls_estimate(*, job: ExportJob) -> tuple[str, bool]:
    """``(text, cut)``: the last estimate in words with its time (``""`` when the job has none),
    and whether it left items for re-export (a WARNING entry)."""
    entry = (
        AuditEntry.objects.filter(export_job=job, step=AuditStep.CALLS_ESTIMATED)
        .order_by("-id")
        .first()
    )
    if entry is None:
        return "", False
    return f"{entry.message} ({absolute(entry.created_at)})", (
        entry.outcome == AuditEntry.Outcome.WARNING
    )
