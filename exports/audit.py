"""The one writer of audit entries.

Every step of a run lands here with its trigger and run id. Messages are written for a finance
operator reading the audit table; they never contain a secret.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass

from exports import clock
from exports.models import AuditEntry, AuditStep, Company, ExportJob

logger = logging.getLogger("exports.audit")

_WORKER = f"{socket.gethostname()}:{os.getpid()}"


def worker_identity() -> str:
    """Host and pid of this process, for display only (never used for ownership)."""
    global _WORKER
    pid = os.getpid()
    if not _WORKER.endswith(f":{pid}"):
        _WORKER = f"{socket.gethostname()}:{pid}"
    return _WORKER


@dataclass(frozen=True)
class HttpCall:
    method: str
    path: str
    status: int | None = None


def record(
    *,
    company: Company | None,
    trigger: str,
    step: AuditStep,
    message: str,
    run_id: uuid.UUID | None,
    outcome: str = AuditEntry.Outcome.OK,
    export_job: ExportJob | None = None,
    http: HttpCall | None = None,
) -> AuditEntry:
    entry = AuditEntry.objects.create(
        created_at=clock.now(),
        company=company,
        export_job=export_job,
        trigger=trigger,
        step=step,
        outcome=outcome,
        http_method=http.method if http else "",
        http_path=(http.path if http else "")[:300],
        http_status=http.status if http else None,
        message=message,
        worker=worker_identity(),
        run_id=run_id,
    )
    log = (
        logger.warning
        if outcome in (AuditEntry.Outcome.WARNING, AuditEntry.Outcome.ERROR)
        else logger.info
    )
    log(
        "%s %s%s: %s",
        company.name if company else "-",
        step,
        f" job={export_job.pleo_job_id}" if export_job else "",
        message,
    )
    return entry
