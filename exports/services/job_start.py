"""Detect and start: which job of the company a run works on, and sending ``started`` for it.

Pleo's how-to "Detect and start export jobs" steps 1-4 (see ``exports.services.start_flow`` for the
whole run). Called with the company's lease held, through :func:`jobs_detect_and_start`:

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

The one case this cannot tell apart: we crashed after committing "starting" but before the POST
left, and another integration started the job meanwhile. The job is then ``in_progress`` with our
"starting" claim, and we resume it as ours. Pleo offers no way to learn who sent ``started``.

A job started or resumed is carried on by the export lifecycle (``exports.services.lifecycle``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from exports import clock, crashpoints, pleo
from exports.audit import HttpCall
from exports.models import AuditEntry, AuditStep, ExportJob
from exports.notifications import service as notifications
from exports.services.lifecycle import job_carry
from exports.services.runs import (
    FINISHED,
    Decision,
    Outcome,
    RunContext,
    by_priority,
    http_call,
)
from exports.services.unknown_status import company_hold_check

MAX_START_ATTEMPTS = 3
MAX_RELISTS = 3
UNFINISHED = (pleo.JobStatus.PENDING, pleo.JobStatus.IN_PROGRESS)


def job_deadline(*, job: pleo.ExportJob | ExportJob) -> datetime:
    """``lastUpdatedAt`` (or ``createdAt`` when null) plus ``expiresIn``."""
    base = job.last_updated_at or job.created_at
    return base + timedelta(seconds=job.expires_in)


def job_is_expired(*, job: pleo.ExportJob, now: datetime) -> bool:
    skew = timedelta(seconds=settings.EXPIRY_CLOCK_SKEW_SECONDS)
    return now > job_deadline(job=job) + skew


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


def jobs_detect_and_start(*, run: RunContext) -> Decision:
    """One job after another, oldest first, while each one is carried to its end in this run.

    A job that finished frees the company for its next pending job at once (Pleo's single
    worker, strictly sequential); a run stops at the first job that does not finish, and after
    ``MAX_JOBS_PER_RUN`` jobs (the queue brings it back).
    """
    decisions = []
    for _ in range(MAX_JOBS_PER_RUN):
        if company_hold_check(run=run):
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
        if company_hold_check(run=run):
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
            AuditStep.OWNED_ELSEWHERE,
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
            AuditStep.STARTED,
            "Our earlier 'started' (outcome unknown at the time) had taken effect: "
            "the job is ours.",
            job=local,
        )
    finished = job_carry(run=run, job=local, resumed=True)
    return _carried(run, finished or Outcome.RESUMED, local)


def _start_oldest_pending(run: RunContext, pending: list[pleo.ExportJob]) -> Decision:
    expired_seen = False
    for listed in pending:
        # Only read here: the job is mirrored with what the confirming GET returns (for a job
        # we start, in the transaction that also commits the claim).
        known = ExportJob.objects.filter(pleo_job_id=listed.id).only("expired_detected_at").first()
        if known is not None and known.expired_detected_at is not None:
            if job_is_expired(job=listed, now=clock.now()):
                expired_seen = True  # recorded on an earlier run; not again
                continue
        run.lease.renew_if_due()
        path = f"/v3/export-jobs/{listed.id}"
        try:
            remote = run.client.get_export_job(listed.id)
        except pleo.PleoNotFound:
            local, _ = run.mirror(listed)
            run.audit(
                AuditStep.NOT_FOUND,
                "Job was listed but Pleo no longer finds it; skipped.",
                job=local,
                outcome=AuditEntry.Outcome.WARNING,
                http=http_call("GET", path, 404),
            )
            continue
        if remote.status == pleo.JobStatus.PENDING and not job_is_expired(
            job=remote, now=clock.now()
        ):
            # One transaction, committed before 'started' is sent: the confirmed read, its audit
            # entry and our claim (fewer write transactions between the Pleo calls: benchmark 1).
            with run.lease.guard():
                local, _ = run.mirror_guarded(remote)
                run.audit_guarded(
                    AuditStep.SELECTED,
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
                    AuditStep.FINISHED_ELSEWHERE,
                    f"Job is already {remote.status} in Pleo; skipped.",
                    job=local,
                    outcome=AuditEntry.Outcome.INFO,
                    http=http_call("GET", path, 200),
                )
            continue
        if remote.status == pleo.JobStatus.IN_PROGRESS:
            return _handle_running(run, [remote])
        if remote.status == pleo.JobStatus.UNKNOWN:
            if company_hold_check(run=run):  # it was ours after all (claimed earlier)
                return _held(run)
            continue  # not ours: never started (audited once by the mirror)
        if job_is_expired(job=remote, now=clock.now()):  # pending, but past its deadline
            expired_seen = True
            if local.expired_detected_at is None:
                with run.lease.guard():
                    local.expired_detected_at = clock.now()
                    local.save(update_fields=["expired_detected_at", "updated_at"])
                run.audit(
                    AuditStep.EXPIRED,
                    f"Job expired at {job_deadline(job=remote):%Y-%m-%d %H:%M:%S} UTC before it "
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
    last_answer = ""
    for _attempt in range(MAX_START_ATTEMPTS):
        run.lease.renew_if_due()
        try:
            run.client.post_export_job_event(local.pleo_job_id, pleo.JobEvent.STARTED)
        except pleo.PleoOutcomeUnknown as exc:
            earlier_unknown = True
            last_answer = str(exc)
            run.audit(
                AuditStep.START_UNKNOWN,
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
        f"'started' was sent {MAX_START_ATTEMPTS} times with no known outcome (last answer: "
        f"{last_answer}); the job is left for the next run to reconcile."
    )
    run.audit(AuditStep.ERROR, message, job=local, outcome=AuditEntry.Outcome.ERROR)
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
            AuditStep.STARTED,
            note or "Pleo accepted 'started': the job is ours.",
            job=local,
            http=http,
        )
    return job_carry(run=run, job=local, resumed=False)


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
        AuditStep.FINISHED_ELSEWHERE,
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
        AuditStep.START_CONFLICT,
        message,
        job=local,
        outcome=AuditEntry.Outcome.WARNING if earlier_unknown else AuditEntry.Outcome.INFO,
        http=http_call("POST", "/v3/export-job-events", 422),
    )
    run.set_claim(local, ExportJob.Claim.LOST)
    return Decision(Outcome.CONFLICT, local.pleo_job_id)
