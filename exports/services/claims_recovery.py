"""``--recover``: re-read every unfinished claim of ours in Pleo and bring our mirror up to date.

A claim Pleo no longer finds is dropped (recorded once); a job of ours that Pleo failed or expired
is an error and an outcome of the run (``RunContext.ended``); one completed by someone else is
noted. Called by the start flow before it detects and starts, with the company's lease held.
"""

from __future__ import annotations

from exports import pleo
from exports.models import AuditEntry, AuditStep, ExportJob
from exports.notifications import service as notifications
from exports.services.failing import job_failing_end
from exports.services.job_end import job_end_in_pleo
from exports.services.lifecycle_common import State
from exports.services.runs import Decision, Outcome, RunContext, http_call


def claims_recover(*, run: RunContext) -> None:
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
            run.set_claim(local, ExportJob.Claim.NONE, processing_state=State.NOT_FOUND)
            run.audit(
                AuditStep.NOT_FOUND,
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
                    AuditStep.FINISHED_ELSEWHERE,
                    f"Recovery: the job we claimed is now {remote.status} in Pleo.",
                    job=local,
                    outcome=AuditEntry.Outcome.INFO,
                )
            else:
                # A job of ours that failed or expired: an error, and an outcome of this run.
                with run.lease.guard():
                    job_failing_end(job=local, error=end.message)
                run.audit(
                    AuditStep.JOB_ENDED,
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
