"""Export jobs whose status Pleo reports with a value we do not know.

The client reads such a status as ``JobStatus.UNKNOWN`` and keeps the raw string
(:mod:`exports.pleo.enums`; ``expired`` is read as ``failed``/``job_expired`` and never gets
here). Every read of a job goes through the start flow's mirror, which calls
:func:`job_status_noted` when the mirrored status changes (or an unknown raw value changes):

* a job that is not ours is never started; it is audited once (WARNING) with the raw value;
* a job of ours is audited once (ERROR) with the raw value and the company is *held*
  (``Company.unknown_status_*``): nothing else is started for it, because the job might still be
  running (Pleo's single-worker rule). The hold ends when Pleo shows the job in a status we know
  (each run re-reads it: :func:`company_hold_check`), or when an operator releases the company
  from the admin (:func:`company_release_unknown_status`).

"Once" is the start flow's usual rule: an entry when the mirrored state changes, none on the runs
that find it unchanged. A released job that stays in the same unknown status does not hold the
company again; a different unknown value does.
"""

from __future__ import annotations

import logging
import uuid

from django.db import transaction

from exports import audit, clock, pleo
from exports.audit import HttpCall
from exports.models import AuditEntry, AuditStep, Company, ExportJob, Trigger
from exports.services.lifecycle_common import State

logger = logging.getLogger(__name__)

RELEASE_HINT = (
    "an operator can release the company in the admin (Companies → select it → 'Release "
    "company (unknown job status)')"
)


def job_raw_status(*, job: ExportJob) -> str:
    """The status string Pleo last sent for ``job`` (from its last payload)."""
    payload = job.last_payload if isinstance(job.last_payload, dict) else {}
    raw = payload.get("status")
    return raw if isinstance(raw, str) else str(job.status)


def job_status_noted(*, run, local: ExportJob, remote: pleo.ExportJob) -> None:
    """The mirrored status of ``local`` just changed to what ``remote`` says. Called inside the
    run's lease guard (same transaction as the mirror)."""
    company = run.company
    if remote.status == pleo.JobStatus.UNKNOWN:
        raw = remote.raw_status[:100]
        if local.is_ours:
            if company.unknown_status_job_id is None:
                _hold(company, job_id=local.pleo_job_id, raw=raw)
            run.audit_guarded(
                AuditStep.UNKNOWN_STATUS,
                f"Pleo reports this job of ours with a status we do not know: '{raw}'. It might "
                f"still be running, so nothing else is started for this company until Pleo shows "
                f"a status we know (each check reads the job again), or {RELEASE_HINT}.",
                job=local,
                outcome=AuditEntry.Outcome.ERROR,
            )
        else:
            run.audit_guarded(
                AuditStep.UNKNOWN_STATUS,
                f"Pleo reports this job with a status we do not know: '{raw}'. It is not ours "
                f"and is not started.",
                job=local,
                outcome=AuditEntry.Outcome.WARNING,
            )
        return
    if company.unknown_status_job_id == local.pleo_job_id:
        held_by = company.unknown_status
        following = _next_unknown_job_of_ours(company, besides=local.pleo_job_id)
        if following is None:
            _hold(company, job_id=None, raw="")
            note = "The company is no longer held."
        else:
            _hold(company, job_id=following.pleo_job_id, raw=job_raw_status(job=following))
            note = f"The company stays held by job {following.pleo_job_id}."
        run.audit_guarded(
            AuditStep.UNKNOWN_STATUS_CLEARED,
            f"Pleo shows the job as {remote.status} again (it was '{held_by}'). {note}",
            job=local,
            outcome=AuditEntry.Outcome.INFO,
        )


def company_hold_check(*, run) -> bool:
    """True when the company is held by a job of ours in an unknown status.

    Re-reads the holding job first (one GET, unless this run already read it): a status we know
    ends the hold (the mirror audits it), a 404 drops the job and the hold.
    """
    job_id = run.company.unknown_status_job_id
    if job_id is None:
        return False
    if job_id not in run.fresh_job_ids:
        run.lease.renew_if_due()
        try:
            remote = run.client.get_export_job(job_id)
        except pleo.PleoNotFound:
            _forget_vanished(run, job_id)
            return run.company.unknown_status_job_id is not None
        run.mirror(remote)
    return run.company.unknown_status_job_id is not None


def company_release_unknown_status(*, company: Company, user_name: str) -> bool:
    """An operator releases a company held by a job in an unknown status. False when the company
    was not held. The job keeps its claim: should Pleo show it in progress again, it is resumed
    as ours; as long as it stays in the same unknown status it holds the company no more."""
    with transaction.atomic():
        held = (
            Company.objects.select_for_update()
            .filter(pk=company.pk)
            .values_list("unknown_status_job_id", "unknown_status")
            .first()
        )
        if held is None or held[0] is None:
            return False
        job_id, raw = held
        _hold(company, job_id=None, raw="")
        audit.record(
            company=company,
            export_job=ExportJob.objects.filter(pleo_job_id=job_id).first(),
            trigger=Trigger.MANUAL,
            step=AuditStep.RELEASED,
            message=(
                f"Released by {user_name}: job {job_id} (status '{raw}' in Pleo) no longer holds "
                f"the company; its next pending job may be started. Should that job still be "
                f"running in Pleo, two jobs of this company may run at once."
            ),
            run_id=None,
            outcome=AuditEntry.Outcome.WARNING,
        )
    logger.warning("Company %s released from unknown job status by %s", company.pk, user_name)
    return True


def _hold(company: Company, *, job_id: uuid.UUID | None, raw: str) -> None:
    """Set (or with ``job_id`` None, clear) the hold, in the database and on ``company``."""
    fields = {
        "unknown_status_job_id": job_id,
        "unknown_status": raw,
        "unknown_status_since": clock.now() if job_id is not None else None,
    }
    Company.objects.filter(pk=company.pk).update(**fields)
    for name, value in fields.items():
        setattr(company, name, value)


def _next_unknown_job_of_ours(company: Company, *, besides: uuid.UUID) -> ExportJob | None:
    return (
        ExportJob.objects.filter(
            company=company,
            status=ExportJob.Status.UNKNOWN,
            claim__in=[ExportJob.Claim.OURS, ExportJob.Claim.STARTING, ExportJob.Claim.ADOPTED],
        )
        .exclude(pleo_job_id=besides)
        .order_by("created_at")
        .first()
    )


def _forget_vanished(run, job_id: uuid.UUID) -> None:
    """The holding job is gone from Pleo (404): drop our claim and the hold, audited once."""
    with run.lease.guard():
        local = ExportJob.objects.filter(pleo_job_id=job_id).first()
        following = _next_unknown_job_of_ours(run.company, besides=job_id)
        if following is None:
            _hold(run.company, job_id=None, raw="")
        else:
            _hold(run.company, job_id=following.pleo_job_id, raw=job_raw_status(job=following))
        if local is not None:
            local.claim = ExportJob.Claim.NONE
            local.processing_state = State.NOT_FOUND
            local.save(update_fields=["claim", "processing_state", "updated_at"])
        run.audit_guarded(
            AuditStep.NOT_FOUND,
            "The job of ours whose status we did not know is no longer found in Pleo; our claim "
            "on it was dropped and it holds the company no more.",
            job=local,
            outcome=AuditEntry.Outcome.WARNING,
            http=HttpCall(method="GET", path=f"/v3/export-jobs/{job_id}", status=404),
        )
