"""The detect-and-start flow: Pleo's how-to "Detect and start export jobs", one service function.

Every trigger (webhook, schedule, admin "Check now", ``check_exports``, the recovery sweep) ends in
:func:`run_export_check`. Holding the company's lease it:

1. lists the company's unfinished jobs (``pending`` and ``in_progress``, every page);
2. resumes an ``in_progress`` job that our claim record says we started, or, when such a job is not
   ours, records it as owned elsewhere and starts nothing (Pleo's single-worker rule);
3. otherwise takes the oldest ``pending`` job (``createdAt``, then id), confirms it with
   ``GET /v3/export-jobs/{id}`` (a 404, a terminal status or an expired job is recorded and the
   next oldest is taken);
4. commits a claim record (state "starting"), then POSTs ``started``; a 422
   ``INVALID_EXPORT_JOB_STATUS_CHANGE`` is expected (never retried: the company is listed
   again); an unknown outcome is reconciled by re-reading the job: in progress means our POST
   took effect, still pending means ``started`` is sent again (bounded), and a 422 to that is
   never taken as ours (at most one owner per job; an operator can adopt the job).

A run that changes nothing writes no audit rows: it only records the last check in the same
statement that releases the lease.

The one case this cannot tell apart: we crashed after committing "starting" but before the POST
left, and another integration started the job meanwhile. The job is then ``in_progress`` with our
"starting" claim, and we resume it as ours. Pleo offers no way to learn who sent ``started``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings

from exports import audit, clock, crashpoints, pleo
from exports.audit import HttpCall
from exports.models import AuditEntry, Company, ExportJob, Trigger
from exports.notifications import service as notifications
from exports.services.credentials import CredentialUnusable, client_for_company
from exports.services.failing import audit_again_due, job_failing_end
from exports.services.job_end import job_end_in_pleo
from exports.services.leases import (
    LeaseLost,
    RunDeferred,
    lease_acquire,
    lease_defer,
    lease_release,
    lease_release_or_recheck,
)
from exports.services.lifecycle import carry_job
from exports.services.runs import (
    FINISHED,
    Decision,
    FlowResult,
    Outcome,
    RunContext,
    by_priority,
    error_http,
    http_call,
)
from exports.services.unknown_status import company_hold_check

logger = logging.getLogger(__name__)


MAX_START_ATTEMPTS = 3
MAX_RELISTS = 3
UNFINISHED = (pleo.JobStatus.PENDING, pleo.JobStatus.IN_PROGRESS)


def job_deadline(job: pleo.ExportJob | ExportJob) -> datetime:
    """``lastUpdatedAt`` (or ``createdAt`` when null) plus ``expiresIn``."""
    base = job.last_updated_at or job.created_at
    return base + timedelta(seconds=job.expires_in)


def is_expired(job: pleo.ExportJob, *, now: datetime) -> bool:
    skew = timedelta(seconds=settings.EXPIRY_CLOCK_SKEW_SECONDS)
    return now > job_deadline(job) + skew


def run_export_check(
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
            if not lease_release_or_recheck(
                lease,
                outcome=result.outcome,
                error=result.error,
                work_pending=result.work_pending,
                failing=_is_failing(result),
            ):
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
            lease_release(
                lease,
                outcome=final.outcome if final else Outcome.FAILED,
                error=final.error if final else "The run was interrupted.",
                work_pending=final.work_pending if final else False,
                not_before=final.not_before if final else None,
                # An exception: the company guard records the failed attempt (counted once).
                failing=_is_failing(final) if final else None,
            )
    return _summarise(outcomes)


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
        client = client_for_company(company, run_id=run_id)
    except CredentialUnusable as exc:
        return _failed(company, lease, trigger, run_id, str(exc))
    run = RunContext(
        company=company, lease=lease, client=client, trigger=trigger, run_id=run_id, recover=recover
    )
    try:
        with client:
            if recover:
                _recover_our_claims(run)
            flow = by_priority([*run.ended, _detect_and_start(run)])
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
            "deferred",
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
        and not audit_again_due(company_id=company.pk, job=None, step="error", message=error)
    )
    if not repeated:
        with lease.guard():
            audit.record(
                company=company,
                trigger=trigger,
                step="error",
                message=error,
                run_id=run_id,
                outcome=AuditEntry.Outcome.ERROR,
                http=http,
            )
    logger.warning("%s: check failed: %s", company.name, error)
    return FlowResult(company=company, outcome=Outcome.FAILED, run_id=run_id, error=error)


def _list_unfinished(run: RunContext) -> list[pleo.ExportJob]:
    run.lease.renew_if_due()
    jobs = run.client.list_export_jobs(
        company_id=run.company.pleo_company_id, statuses=list(UNFINISHED)
    )
    # The list's order is not documented: sort ourselves, oldest first, ties by id.
    return sorted(
        (
            job
            for job in jobs
            if job.company_id == run.company.pleo_company_id and job.id not in run.finished_job_ids
        ),
        key=lambda job: (job.created_at, str(job.id)),
    )


MAX_JOBS_PER_RUN = 25


def _detect_and_start(run: RunContext) -> Decision:
    """One job after another, oldest first, while each one is carried to its end in this run.

    A job that finished frees the company for its next pending job at once (Pleo's single
    worker, strictly sequential); a run stops at the first job that does not finish, and after
    ``MAX_JOBS_PER_RUN`` jobs (the queue brings it back).
    """
    decisions = []
    for _ in range(MAX_JOBS_PER_RUN):
        if company_hold_check(run):
            decisions.append(_held(run))
            break
        decision = _detect_and_start_one(run)
        decisions.append(decision)
        if decision.outcome not in FINISHED:
            break
        run.finished_job_ids.add(decision.job_id)
    return by_priority(decisions)


def _held(run: RunContext) -> Decision:
    company = run.company
    return Decision(
        Outcome.UNKNOWN_STATUS,
        company.unknown_status_job_id,
        f"Held: Pleo reports job {company.unknown_status_job_id} of ours with the unknown status "
        f"'{company.unknown_status}'; nothing else is started until Pleo shows a status we know "
        f"or an operator releases the company.",
    )


def _detect_and_start_one(run: RunContext) -> Decision:
    conflict_seen = False
    for _ in range(MAX_RELISTS):
        jobs = _list_unfinished(run)
        for job in jobs:
            if job.status == pleo.JobStatus.UNKNOWN:
                run.mirror(job)  # audited once; a job of ours holds the company
        if company_hold_check(run):
            return _held(run)
        running = [job for job in jobs if job.status == pleo.JobStatus.IN_PROGRESS]
        if running:
            decision = _handle_running(run, running)
        else:
            pending = [job for job in jobs if job.status == pleo.JobStatus.PENDING]
            decision = _start_oldest_pending(run, pending)
        if decision.outcome == Outcome.CONFLICT:
            conflict_seen = True
            continue  # as the seed says: list the company's jobs again
        if conflict_seen and decision.outcome in (Outcome.NOTHING_PENDING, Outcome.OWNED_ELSEWHERE):
            return Decision(Outcome.CONFLICT, decision.job_id)
        return decision
    return Decision(Outcome.CONFLICT)


def _handle_running(run: RunContext, running: list[pleo.ExportJob]) -> Decision:
    mirrored = [(remote, run.mirror(remote)[0]) for remote in running]
    for _remote, local in mirrored:
        if local.is_ours:
            return _resume(run, local)
    remote, local = mirrored[0]
    if local.claim != ExportJob.Claim.ELSEWHERE:
        run.set_claim(local, ExportJob.Claim.ELSEWHERE)
        run.audit(
            "owned_elsewhere",
            "Job is in progress but not started by us (another integration, or our records "
            "were lost). Nothing else is started for this company until it finishes; an "
            "operator can adopt it from the admin.",
            job=local,
            outcome=AuditEntry.Outcome.WARNING,
        )
    # Told once it has blocked the company for an hour (the service decides; no write before).
    notifications.notification_request(
        kind=notifications.Kind.BLOCKED_ELSEWHERE, company=run.company, job=local
    )
    if run.recover:
        run.hints.append(
            f"Job {remote.id} is in progress but not ours. If our records were lost, adopt it "
            f"in the admin (Export jobs → select it → 'Adopt job')."
        )
    return Decision(Outcome.OWNED_ELSEWHERE, remote.id)


def _resume(run: RunContext, local: ExportJob) -> Decision:
    if local.claim == ExportJob.Claim.STARTING:
        # Our earlier run committed "starting" and the job is in progress: the POST landed.
        run.set_claim(local, ExportJob.Claim.OURS)
        run.audit(
            "started",
            "Our earlier 'started' (outcome unknown at the time) had taken effect: "
            "the job is ours.",
            job=local,
        )
    finished = carry_job(run=run, job=local, resumed=True)
    return _carried(run, finished or Outcome.RESUMED, local)


def _start_oldest_pending(run: RunContext, pending: list[pleo.ExportJob]) -> Decision:
    expired_seen = False
    for listed in pending:
        # Only read here: the job is mirrored with what the confirming GET returns (for a job
        # we start, in the transaction that also commits the claim).
        known = ExportJob.objects.filter(pleo_job_id=listed.id).only("expired_detected_at").first()
        if known is not None and known.expired_detected_at is not None:
            if is_expired(listed, now=clock.now()):
                expired_seen = True  # recorded on an earlier run; not again
                continue
        run.lease.renew_if_due()
        path = f"/v3/export-jobs/{listed.id}"
        try:
            remote = run.client.get_export_job(listed.id)
        except pleo.PleoNotFound:
            local, _ = run.mirror(listed)
            run.audit(
                "not_found",
                "Job was listed but Pleo no longer finds it; skipped.",
                job=local,
                outcome=AuditEntry.Outcome.WARNING,
                http=http_call("GET", path, 404),
            )
            continue
        if remote.status == pleo.JobStatus.PENDING and not is_expired(remote, now=clock.now()):
            # One transaction, committed before 'started' is sent: the confirmed read, its audit
            # entry and our claim (fewer write transactions between the Pleo calls: benchmark 1).
            with run.lease.guard():
                local, _ = run.mirror_guarded(remote)
                run.audit_guarded(
                    "selected",
                    f"Oldest pending job (created {remote.created_at:%Y-%m-%d %H:%M:%S} UTC, "
                    f"{remote.number_of_items} items) confirmed pending.",
                    job=local,
                    http=http_call("GET", path, 200),
                )
                run.set_claim_guarded(
                    local, ExportJob.Claim.STARTING, claim_run_id=run.run_id, claimed_at=clock.now()
                )
            return _start(run, local)
        local, status_changed = run.mirror(remote)
        if remote.status in pleo.TERMINAL_JOB_STATUSES:
            if status_changed:
                run.audit(
                    "finished_elsewhere",
                    f"Job is already {remote.status} in Pleo; skipped.",
                    job=local,
                    outcome=AuditEntry.Outcome.INFO,
                    http=http_call("GET", path, 200),
                )
            continue
        if remote.status == pleo.JobStatus.IN_PROGRESS:
            return _handle_running(run, [remote])
        if remote.status == pleo.JobStatus.UNKNOWN:
            if company_hold_check(run):  # it was ours after all (claimed earlier)
                return _held(run)
            continue  # not ours: never started (audited once by the mirror)
        if is_expired(remote, now=clock.now()):  # pending, but past its deadline
            expired_seen = True
            if local.expired_detected_at is None:
                with run.lease.guard():
                    local.expired_detected_at = clock.now()
                    local.save(update_fields=["expired_detected_at", "updated_at"])
                run.audit(
                    "expired",
                    f"Job expired at {job_deadline(remote):%Y-%m-%d %H:%M:%S} UTC before it "
                    f"could be started; it was not started. Resubmit the export from Pleo's "
                    f"web app.",
                    job=local,
                    outcome=AuditEntry.Outcome.WARNING,
                    http=http_call("GET", path, 200),
                )
            continue
    if expired_seen:
        return Decision(Outcome.EXPIRED_SKIPPED)
    return Decision(Outcome.NOTHING_PENDING)


def _start(run: RunContext, local: ExportJob) -> Decision:
    """POST ``started`` for a job whose claim ("starting") is committed; reconcile an unknown
    outcome."""
    crashpoints.crash_point("after_claim")
    events_path = "/v3/export-job-events"
    earlier_unknown = False
    for _attempt in range(MAX_START_ATTEMPTS):
        run.lease.renew_if_due()
        try:
            run.client.post_export_job_event(local.pleo_job_id, pleo.JobEvent.STARTED)
        except pleo.PleoOutcomeUnknown as exc:
            earlier_unknown = True
            run.audit(
                "start_unknown",
                f"Outcome of 'started' unknown ({exc}); re-reading the job.",
                job=local,
                outcome=AuditEntry.Outcome.WARNING,
                http=http_call("POST", events_path, getattr(exc, "status", None)),
            )
            decision = _reconcile_after_unknown(run, local)
            if decision is None:
                continue  # still pending: POST again (bounded)
            return decision
        except pleo.PleoUnprocessable as exc:
            if not exc.has_type(pleo.ErrorType.INVALID_EXPORT_JOB_STATUS_CHANGE):
                raise
            return _start_conflict(run, local, earlier_unknown=earlier_unknown)
        else:
            crashpoints.crash_point("after_started")
            finished = _mark_started(run, local, http=http_call("POST", events_path, 202))
            return _carried(run, finished or Outcome.STARTED, local)
    message = (
        f"'started' was sent {MAX_START_ATTEMPTS} times with no known outcome; the job is left "
        f"for the next run to reconcile."
    )
    run.audit("error", message, job=local, outcome=AuditEntry.Outcome.ERROR)
    return Decision(Outcome.FAILED, local.pleo_job_id, message)


def _carried(run: RunContext, outcome: str, local: ExportJob) -> Decision:
    """The decision for a job the lifecycle carried: with why it stopped or ended badly."""
    return Decision(outcome, local.pleo_job_id, run.job_errors.get(local.pleo_job_id, ""))


def _mark_started(
    run: RunContext, local: ExportJob, *, http: HttpCall | None, note: str = ""
) -> str | None:
    """Record that the job is ours, then carry it on. Returns the lifecycle's final outcome."""
    with run.lease.guard():
        local.claim = ExportJob.Claim.OURS
        local.status = ExportJob.Status.IN_PROGRESS
        # Until the job is read from Pleo again, the time Pleo accepted our event (as
        # ``completed_at`` is set when our final event is accepted): not re-read for one field.
        local.started_at = local.started_at or clock.now()
        local.save(update_fields=["claim", "status", "started_at", "updated_at"])
        run.audit_guarded(
            "started", note or "Pleo accepted 'started': the job is ours.", job=local, http=http
        )
    return carry_job(run=run, job=local, resumed=False)


def _reconcile_after_unknown(run: RunContext, local: ExportJob) -> Decision | None:
    """Re-read the job after an unknown outcome. None: still pending (send again)."""
    remote = run.client.get_export_job(local.pleo_job_id)
    local, _ = run.mirror(remote)
    if remote.status == pleo.JobStatus.PENDING:
        return None
    if remote.status == pleo.JobStatus.UNKNOWN:
        # Our 'started' may have landed: the job keeps our claim and holds the company.
        return _held(run)
    if remote.status == pleo.JobStatus.IN_PROGRESS:
        # Our claim says "starting" for this run: the POST took effect.
        finished = _mark_started(
            run,
            local,
            http=http_call("GET", f"/v3/export-jobs/{remote.id}", 200),
            note="The job is in progress after our 'started' with unknown outcome: it is ours.",
        )
        return _carried(run, finished or Outcome.STARTED, local)
    run.set_claim(local, ExportJob.Claim.NONE)
    run.audit(
        "finished_elsewhere",
        f"After an unknown outcome the job is {remote.status} in Pleo; nothing more is done.",
        job=local,
        outcome=AuditEntry.Outcome.WARNING,
    )
    return Decision(Outcome.CONFLICT, local.pleo_job_id)


def _start_conflict(run: RunContext, local: ExportJob, *, earlier_unknown: bool) -> Decision:
    """A 422 to ``started``: the job is not ours, and is never claimed as ours.

    Even after an earlier attempt of ours with an unknown outcome: that attempt was followed by a
    re-read that found the job still pending, so whoever Pleo started it for since is someone
    else, or (rarely) our attempt landing late. Claiming it could give the job two owners (two
    integrations booking the same items); leaving it gives it at most one, and an operator who
    knows no other integration runs can adopt it.
    """
    message = (
        "Pleo answered 422 INVALID_EXPORT_JOB_STATUS_CHANGE to 'started' (expected when another "
        "worker moved first); not retried, listing the company's jobs again."
    )
    if earlier_unknown:
        message += (
            " An earlier 'started' of ours had an unknown outcome, but the job was still pending "
            "after it, so the job is not claimed as ours. If no other integration exports for "
            "this company, adopt it in the admin (Export jobs → 'Adopt job')."
        )
    run.audit(
        "start_conflict",
        message,
        job=local,
        outcome=AuditEntry.Outcome.WARNING if earlier_unknown else AuditEntry.Outcome.INFO,
        http=http_call("POST", "/v3/export-job-events", 422),
    )
    run.set_claim(local, ExportJob.Claim.LOST)
    return Decision(Outcome.CONFLICT, local.pleo_job_id)


def _recover_our_claims(run: RunContext) -> None:
    """``--recover``: re-read every unfinished claim of ours and bring our mirror up to date."""
    claims = ExportJob.objects.filter(
        company=run.company,
        claim__in=[ExportJob.Claim.OURS, ExportJob.Claim.STARTING, ExportJob.Claim.ADOPTED],
        status__in=[ExportJob.Status.PENDING, ExportJob.Status.IN_PROGRESS],
    )
    for local in claims:
        run.lease.renew_if_due()
        try:
            remote = run.client.get_export_job(local.pleo_job_id)
        except pleo.PleoNotFound:
            # Recorded once: the claim is dropped, so neither recovery nor the sweep asks again.
            run.set_claim(local, ExportJob.Claim.NONE, processing_state="not_found")
            run.audit(
                "not_found",
                "A job we claimed is no longer found in Pleo; our claim on it was dropped.",
                job=local,
                outcome=AuditEntry.Outcome.WARNING,
                http=http_call("GET", f"/v3/export-jobs/{local.pleo_job_id}", 404),
            )
            continue
        local, status_changed = run.mirror(remote)
        if status_changed and remote.status in pleo.TERMINAL_JOB_STATUSES:
            end = job_end_in_pleo(job=local, remote=remote, when="(found by recovery)")
            if end.outcome == Outcome.FINISHED_ELSEWHERE:
                run.audit(
                    "finished_elsewhere",
                    f"Recovery: the job we claimed is now {remote.status} in Pleo.",
                    job=local,
                    outcome=AuditEntry.Outcome.INFO,
                )
            else:
                # A job of ours that failed or expired: an error, and an outcome of this run.
                with run.lease.guard():
                    job_failing_end(job=local, error=end.message)
                run.audit(
                    "job_ended",
                    f"Recovery: {end.message}",
                    job=local,
                    outcome=AuditEntry.Outcome.ERROR,
                    http=http_call("GET", f"/v3/export-jobs/{local.pleo_job_id}", 200),
                )
                run.job_errors[local.pleo_job_id] = end.message
                run.ended.append(Decision(end.outcome, local.pleo_job_id, end.message))
            notifications.notification_request_job_outcome(
                company=run.company, job=local, cause=notifications.JobEnd.ENDED_IN_PLEO
            )


def job_adopt(*, job: ExportJob, user_name: str) -> None:
    """An operator takes ownership of an in-progress job our records do not show as ours."""
    job.claim = ExportJob.Claim.ADOPTED
    job.save(update_fields=["claim", "updated_at"])
    audit.record(
        company=job.company,
        export_job=job,
        trigger=Trigger.MANUAL,
        step="adopted",
        message=f"Adopted by {user_name}: the job will be resumed as ours.",
        run_id=None,
        outcome=AuditEntry.Outcome.WARNING,
    )
