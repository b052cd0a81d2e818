"""One run of the detect-and-start flow: its context, its outcomes and its result.

A run holds the company's lease; every write it makes runs in a lease guard (a transaction that
checks the lease). :class:`RunContext` is what the start flow (``exports.services.start_flow``)
hands the export lifecycle (``exports.services.lifecycle``) and the services they share; it lives
here so that imports go one way: start_flow → lifecycle → runs.

``Outcome`` codes are the stable interface of a run (``check_exports`` prints them, JSON carries
them, ``Company.last_check_outcome`` stores them); ``exports.services.outcome_labels`` says how
they read on a page.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum, nonmember
from typing import ParamSpec, TypeVar

from exports import audit, clock, pleo
from exports.audit import HttpCall
from exports.models import AuditEntry, AuditStep, Company, ExportJob
from exports.services.leases import Lease
from exports.services.unknown_status import job_raw_status, job_status_noted

P = ParamSpec("P")
R = TypeVar("R")


class Outcome(StrEnum):
    STARTED = "started"
    RESUMED = "resumed"
    NOTHING_PENDING = "nothing_pending"
    BUSY = "busy"
    OWNED_ELSEWHERE = "owned_elsewhere"
    CONFLICT = "conflict"
    EXPIRED_SKIPPED = "expired_skipped"
    FAILED = "failed"
    # Set by the export lifecycle (exports.services.lifecycle) when it carried the job to its end.
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    # A job of ours failed: we sent 'failed' (validation failed, or every item failed), or Pleo
    # failed it under us for a reason other than expiry, or no longer finds it.
    FAILED_JOB = "failed_job"
    JOB_EXPIRED = "job_expired"  # Pleo expired a job of ours before we finished it
    # A job we worked on was completed in Pleo, not by our final event (someone else finished it).
    FINISHED_ELSEWHERE = "finished_elsewhere"
    # Held: a job of ours is in a status we do not know (exports.services.unknown_status).
    UNKNOWN_STATUS = "unknown_status"
    # Not now: the request budget is spent, or MAX_CONCURRENT_COMPANIES companies run already.
    # The lease is released and the sweep runs the company again at ``FlowResult.not_before``.
    DEFERRED = "deferred"

    # Which outcome of several iterations (a recheck loop) the run reports.
    # A job of ours that failed or expired outranks one completed after it in the same run.
    # (Inside the class body the names are their values; a value equals its member.)
    PRIORITY = nonmember(
        (
            DEFERRED,
            JOB_EXPIRED,
            FAILED_JOB,
            COMPLETED,
            COMPLETED_WITH_ERRORS,
            FINISHED_ELSEWHERE,
            STARTED,
            RESUMED,
            FAILED,
            UNKNOWN_STATUS,
            CONFLICT,
            OWNED_ELSEWHERE,
            EXPIRED_SKIPPED,
            NOTHING_PENDING,
        )
    )
    # Outcomes that need a person: ``check_exports`` exits 1, the index flags the company.
    FAILURES = nonmember(frozenset({FAILED, FAILED_JOB, JOB_EXPIRED}))


# A job carried to its end in the run (the company is free for its next pending job).
FINISHED = frozenset(
    {
        Outcome.COMPLETED,
        Outcome.COMPLETED_WITH_ERRORS,
        Outcome.FAILED_JOB,
        Outcome.JOB_EXPIRED,
        Outcome.FINISHED_ELSEWHERE,
    }
)


@dataclass
class FlowResult:
    company: Company
    outcome: str
    run_id: uuid.UUID
    job_id: uuid.UUID | None = None
    error: str = ""
    hints: list[str] = field(default_factory=list)
    work_pending: bool = False  # a job of ours was left unfinished for the next run
    not_before: datetime | None = None  # deferred: when the company may run again

    def as_dict(self) -> dict:
        return {
            "company": self.company.name,
            "pleo_company_id": str(self.company.pleo_company_id),
            "outcome": self.outcome,
            "job_id": str(self.job_id) if self.job_id else None,
            "run_id": str(self.run_id),
            "error": self.error or None,
        }


@dataclass
class Decision:
    """What one step of a run decided about the company's jobs."""

    outcome: str
    job_id: uuid.UUID | None = None
    error: str = ""


def by_priority(decisions: list[Decision]) -> Decision:
    """The decision the run reports, by ``Outcome.PRIORITY`` (else the last one)."""
    for wanted in Outcome.PRIORITY:
        for decision in decisions:
            if decision.outcome == wanted:
                return decision
    return decisions[-1]


def http_call(method: str, path: str, status: int | None) -> HttpCall:
    """The HTTP call an audit entry records."""
    return HttpCall(method=method, path=path, status=status)


def error_http(exc: pleo.PleoError) -> HttpCall | None:
    """The HTTP call a Pleo error came from, for its audit entry (None when it names none)."""
    if not exc.method or not exc.path:
        return None
    return HttpCall(method=exc.method, path=exc.path, status=exc.status)


def _in_own_guard(method: Callable[P, R]) -> Callable[P, R]:
    """The form of a ``*_guarded`` method of :class:`RunContext` that takes a lease guard of
    its own for the one write."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        with self.lease.guard():
            return method(self, *args, **kwargs)

    return guarded  # type: ignore[return-value]


@dataclass
class RunContext:
    """What one run carries between its steps."""

    company: Company
    lease: Lease
    client: pleo.PleoClient
    trigger: str
    run_id: uuid.UUID
    recover: bool
    hints: list[str] = field(default_factory=list)
    work_pending: bool = False
    # Jobs this run carried to their end: a list that still shows one (a stale read) is not
    # allowed to make the run touch it again.
    finished_job_ids: set[uuid.UUID] = field(default_factory=set)
    # Jobs this run has read from Pleo (and mirrored).
    fresh_job_ids: set[uuid.UUID] = field(default_factory=set)
    # Why a job of ours stopped or ended badly in this run (the lifecycle's pause or end
    # message): the run's error, so the company's last check says it.
    job_errors: dict[uuid.UUID, str] = field(default_factory=dict)
    # Jobs of ours that recovery found failed or expired in Pleo: outcomes of this run.
    ended: list[Decision] = field(default_factory=list)

    # Each write below runs in its own lease guard (a transaction that checks the lease). The
    # ``*_guarded`` forms are for several writes in ONE guard: the caller holds it; the plain
    # forms are the same methods in a guard of their own (``_in_own_guard``).

    def audit_guarded(
        self,
        step: AuditStep,
        message: str,
        *,
        job: ExportJob | None = None,
        outcome: str = AuditEntry.Outcome.OK,
        http: HttpCall | None = None,
    ) -> None:
        audit.record(
            company=self.company,
            trigger=self.trigger,
            step=step,
            message=message,
            run_id=self.run_id,
            outcome=outcome,
            export_job=job,
            http=http,
        )

    audit = _in_own_guard(audit_guarded)

    def mirror(self, remote: pleo.ExportJob) -> tuple[ExportJob, bool]:
        """Create or refresh our mirror of ``remote``. Returns (row, status_changed). A status
        change is noted for the unknown-status rules (exports.services.unknown_status)."""
        with self.lease.guard():
            local, status_changed = self.mirror_guarded(remote)
            if status_changed:
                job_status_noted(run=self, local=local, remote=remote)
            return local, status_changed

    def mirror_guarded(self, remote: pleo.ExportJob) -> tuple[ExportJob, bool]:
        """As :meth:`mirror`, in the caller's guard, without the unknown-status rules (for a job
        confirmed pending). ``status_changed`` is also true when an unknown raw status changed."""
        self.fresh_job_ids.add(remote.id)
        local = ExportJob.objects.filter(pleo_job_id=remote.id).first()
        fields = _mirror_fields(remote)
        if local is None:
            local = ExportJob.objects.create(
                pleo_job_id=remote.id,
                company=self.company,
                seen_via=self.trigger,
                payload_received_at=clock.now(),
                **fields,
            )
            return local, True
        previous_raw = job_raw_status(job=local)
        changed = [name for name, value in fields.items() if getattr(local, name) != value]
        status_changed = "status" in changed or (
            remote.status == pleo.JobStatus.UNKNOWN and previous_raw != remote.raw_status
        )
        if changed:
            for name in changed:
                setattr(local, name, fields[name])
            local.payload_received_at = clock.now()
            local.save(update_fields=[*changed, "payload_received_at", "updated_at"])
        return local, status_changed

    def set_claim_guarded(self, job: ExportJob, claim: str, **extra) -> None:
        job.claim = claim
        for name, value in extra.items():
            setattr(job, name, value)
        job.save(update_fields=["claim", *extra, "updated_at"])

    set_claim = _in_own_guard(set_claim_guarded)


def _mirror_fields(remote: pleo.ExportJob) -> dict:
    return {
        "status": remote.status,
        "created_at": remote.created_at,
        "started_at": remote.started_at,
        "last_updated_at": remote.last_updated_at,
        "completed_at": remote.completed_at,
        "expired_at": remote.expired_at,
        "expires_in": remote.expires_in,
        "number_of_items": remote.number_of_items,
        "is_interactive": remote.is_interactive,
        "vendor_based_bookkeeping": remote.vendor_based_bookkeeping,
        "created_by": remote.created_by,
        "failure_reason": remote.failure_reason or "",
        "failure_reason_type": remote.failure_reason_type or "",
        "last_payload": remote.raw,
    }
