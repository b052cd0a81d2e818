"""The detect-and-start flow: Pleo's how-to "Detect and start export jobs", one service function.

Every trigger (webhook, schedule, admin "Check now", ``check_exports``, the recovery sweep) ends in
:func:`company_check_run`. Holding the company's lease it:

1. with ``--recover``, re-reads every unfinished claim of ours
   (``exports.services.claims_recovery``);
2. detects the job to work on and starts or resumes it (``exports.services.job_start``: list the
   unfinished jobs, resume ours, or confirm and start the oldest pending one);
3. lets the export lifecycle carry that job to its end (``exports.services.lifecycle``), and the
   company's next pending job after it, while each one finishes;
4. releases the lease with the run's outcome (``exports.services.runs.Outcome``), or lists again
   when a recheck was requested during the run.

A run that changes nothing writes no audit rows: it only records the last check in the same
statement that releases the lease.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC

from exports import audit, pleo
from exports.audit import HttpCall
from exports.models import AuditEntry, AuditStep, Company, ExportJob, Trigger
from exports.services.claims_recovery import claims_recover
from exports.services.credentials import CredentialUnusable, pleo_client_for_company
from exports.services.failing import audit_again_due, company_check_failure_audit
from exports.services.job_start import jobs_detect_and_start
from exports.services.leases import (
    CheckRecord,
    LeaseLost,
    RunDeferred,
    lease_acquire,
    lease_defer,
    lease_release,
    lease_release_or_recheck,
)
from exports.services.runs import (
    Decision,
    FlowResult,
    Outcome,
    RunContext,
    by_priority,
    error_http,
)

logger = logging.getLogger(__name__)


def company_check_run(
    *,
    company: Company,
    trigger: str,
    recover: bool = False,
    run_id: uuid.UUID | None = None,
) -> FlowResult:
    """Run the detect-and-start flow for ``company`` now, in this process."""
    run_id = run_id or uuid.uuid4()
    try:
        lease = lease_acquire(company_id=company.pk, trigger=trigger)
    except RunDeferred as exc:
        lease_defer(
            company_id=company.pk,
            not_before=exc.retry_at,
            outcome=Outcome.DEFERRED,
            reason=str(exc),
        )
        logger.info("%s deferred until %s: %s", company.name, exc.retry_at, exc)
        return FlowResult(
            company=company,
            outcome=Outcome.DEFERRED,
            run_id=run_id,
            error=str(exc),
            work_pending=True,
            not_before=exc.retry_at,
        )
    if lease is None:
        logger.info("%s is busy (another run holds its lease); recheck requested", company.name)
        return FlowResult(company=company, outcome=Outcome.BUSY, run_id=run_id)

    outcomes: list[FlowResult] = []
    released = False
    try:
        # One read of the company and its credential (the lease may have waited on a change).
        company.refresh_from_db(from_queryset=Company.objects.select_related("credential"))
        while True:
            result = _run_once(
                company=company, lease=lease, trigger=trigger, recover=recover, run_id=run_id
            )
            outcomes.append(result)
            if result.outcome in (Outcome.FAILED, Outcome.DEFERRED):
                break
            if not lease_release_or_recheck(lease=lease, check=_check_of(result)):
                released = True
                break
            logger.info("%s: a recheck was requested during the run; listing again", company.name)
    except LeaseLost as exc:
        released = True  # not ours to release any more
        outcomes.append(
            FlowResult(
                company=company,
                outcome=Outcome.FAILED,
                run_id=run_id,
                error=f"The run lost its lease (it stalled past the deadline): {exc}",
            )
        )
    finally:
        if not released:
            final = outcomes[-1] if outcomes else None
            # No result: an exception, whose failed attempt the company guard records (once).
            interrupted = CheckRecord(outcome=Outcome.FAILED, error="The run was interrupted.")
            lease_release(lease=lease, check=_check_of(final) if final else interrupted)
    return _summarise(outcomes)


def _check_of(result: FlowResult) -> CheckRecord:
    """The last check that releasing the lease after ``result`` records (``not_before`` is set
    on deferred results only)."""
    return CheckRecord(
        outcome=result.outcome,
        error=result.error,
        work_pending=result.work_pending,
        not_before=result.not_before,
        failing=_is_failing(result),
    )


def _is_failing(result: FlowResult) -> bool:
    """A run that failed or left work unfinished is a failed attempt (``services.failing``)."""
    return result.outcome == Outcome.FAILED or result.work_pending


def _summarise(outcomes: list[FlowResult]) -> FlowResult:
    for wanted in Outcome.PRIORITY:
        for result in outcomes:
            if result.outcome == wanted:
                hints = [h for r in outcomes for h in r.hints]
                result.hints = hints
                return result
    return outcomes[-1]


def _run_once(*, company, lease, trigger, recover, run_id) -> FlowResult:
    def result(outcome, job_id=None, error=""):
        return FlowResult(
            company=company, outcome=outcome, run_id=run_id, job_id=job_id, error=error
        )

    try:
        client = pleo_client_for_company(company=company, run_id=run_id)
    except CredentialUnusable as exc:
        return _failed(company, lease, trigger, run_id, str(exc))
    run = RunContext(
        company=company, lease=lease, client=client, trigger=trigger, run_id=run_id, recover=recover
    )
    try:
        with client:
            if recover:
                claims_recover(run=run)
            flow = by_priority([*run.ended, jobs_detect_and_start(run=run)])
            if client.budget_exhausted is not None:
                # A call was refused by the budget and the lifecycle stopped the job there,
                # without an audit entry of its own: _deferred writes the run's one entry.
                return _deferred(run, client.budget_exhausted, job_id=flow.job_id)
            flow_result = result(flow.outcome, flow.job_id, flow.error or _run_error(run, flow))
            flow_result.hints = run.hints
            flow_result.work_pending = run.work_pending
            return flow_result
    except LeaseLost:
        raise
    except pleo.BudgetExhausted as exc:
        return _deferred(run, exc)
    except CredentialUnusable as exc:
        return _failed(company, lease, trigger, run_id, str(exc))
    except pleo.PleoError as exc:
        return _failed(company, lease, trigger, run_id, _describe(exc), http=error_http(exc))


def _run_error(run: RunContext, flow: Decision) -> str:
    """The reason of a failed outcome, or of work left unfinished, when the decision has none:
    the job's stop message, else the run's last error entry. Every failed outcome carries one."""
    if flow.outcome not in Outcome.FAILURES and not run.work_pending:
        return ""
    if flow.job_id is not None and run.job_errors.get(flow.job_id):
        return run.job_errors[flow.job_id]
    if run.job_errors:
        return list(run.job_errors.values())[-1]
    last = (
        AuditEntry.objects.filter(run_id=run.run_id, outcome=AuditEntry.Outcome.ERROR)
        .order_by("-id")
        .values_list("message", flat=True)
        .first()
    )
    return last or ""


def _deferred(run: RunContext, exc: pleo.BudgetExhausted, job_id=None) -> FlowResult:
    """Our request budget is spent: stop, release, and let the sweep run again at ``retry_at``.

    Expected under load, not an error. A run that had already done something (audited) says why
    it stopped, in one INFO entry (on the job the lifecycle left unfinished, if any); one stopped
    before its first call writes nothing (the company's last check shows "deferred").
    """
    if AuditEntry.objects.filter(run_id=run.run_id).exists():
        job = None
        message = f"Stopped: {exc}."
        if job_id is not None and run.work_pending:
            job = ExportJob.objects.filter(pleo_job_id=job_id).first()
            message += " The job stays in progress; the next run continues where this one stopped."
        retry_at = exc.retry_at.astimezone(UTC)
        run.audit(
            AuditStep.DEFERRED,
            f"{message} The company runs again from {retry_at:%Y-%m-%d %H:%M:%S} UTC (the sweep "
            f"picks it up).",
            job=job,
            outcome=AuditEntry.Outcome.INFO,
        )
    logger.info("%s deferred: %s", run.company.name, exc)
    return FlowResult(
        company=run.company,
        outcome=Outcome.DEFERRED,
        run_id=run.run_id,
        job_id=job_id,
        error=str(exc),
        hints=run.hints,
        work_pending=True,
        not_before=exc.retry_at,
    )


def _describe(exc: pleo.PleoError) -> str:
    if isinstance(exc, pleo.PleoAuthError):
        return f"Pleo refused the credential: {exc}"
    if isinstance(exc, pleo.PleoUnavailable):
        return f"Pleo is unreachable: {exc}"
    return str(exc)


def _failed(
    company, lease, trigger, run_id, error: str, http: HttpCall | None = None
) -> FlowResult:
    """Record a failed run. The same failure again is audited again only once it is an hour old
    (``services.failing``); every attempt is counted on the company and logged."""
    company.refresh_from_db(fields=["last_check_outcome", "last_check_error"])
    repeated = (
        company.last_check_outcome == Outcome.FAILED
        and company.last_check_error == error
        and not audit_again_due(
            company_id=company.pk, job=None, step=AuditStep.ERROR, message=error
        )
    )
    if not repeated:
        with lease.guard():
            company_check_failure_audit(
                company=company, trigger=trigger, run_id=run_id, error=error, http=http
            )
    logger.warning("%s: check failed: %s", company.name, error)
    return FlowResult(company=company, outcome=Outcome.FAILED, run_id=run_id, error=error)


def job_adopt(*, job: ExportJob, user_name: str) -> None:
    """An operator takes ownership of an in-progress job our records do not show as ours."""
    job.claim = ExportJob.Claim.ADOPTED
    job.save(update_fields=["claim", "updated_at"])
    audit.record(
        company=job.company,
        export_job=job,
        trigger=Trigger.MANUAL,
        step=AuditStep.ADOPTED,
        message=f"Adopted by {user_name}: the job will be resumed as ours.",
        run_id=None,
        outcome=AuditEntry.Outcome.WARNING,
    )
