"""The export lifecycle's end of a job: our final event (``completed``, ``completed_with_errors``
or ``failed``, an unknown outcome settled by re-reading the job), and a job that ended in Pleo
without it (expired, failed, completed elsewhere, or gone).

A mixin of the lifecycle's ``_Carrier`` (``exports.services.lifecycle``): it uses the carrier's
``run``, ``job``, ``client``, ``audit`` and ``pleo_call``.
"""

from __future__ import annotations

from exports import clock, crashpoints, pleo
from exports.audit import HttpCall
from exports.models import AuditEntry, AuditStep
from exports.notifications import service as notifications
from exports.services import failing
from exports.services.job_end import job_end_advice, job_end_in_pleo
from exports.services.lifecycle_common import (
    EVENT_STATUS,
    EVENTS_PATH,
    MAX_FINAL_EVENT_ATTEMPTS,
    Ended,
    Pause,
    State,
    plural,
)
from exports.services.runs import Outcome, http_call


class FinalEvent:
    def send_final(
        self,
        event: pleo.JobEvent,
        *,
        reason: str | None = None,
        reason_type: pleo.JobFailureReasonType | None = None,
    ) -> str | None:
        if self.job.processing_state != State.VALIDATING:
            # A 'failed' after failed validation stays "validating": should it not get through,
            # the next run validates again instead of going on to the items.
            self.set_state(State.FINISHING)
        crashpoints.crash_point("before_final_event")
        for _attempt in range(MAX_FINAL_EVENT_ATTEMPTS):
            self.run.lease.renew_if_due()
            try:
                self.client.post_export_job_event(
                    self.job.pleo_job_id,
                    event,
                    failure_reason=reason,
                    failure_reason_type=reason_type,
                )
            except pleo.PleoOutcomeUnknown as exc:
                self.audit(
                    AuditStep.FINISH_UNKNOWN,
                    f"The outcome of '{event}' is unknown ({exc.message}); re-reading the job.",
                    outcome=AuditEntry.Outcome.WARNING,
                    http=http_call("POST", EVENTS_PATH, exc.status),
                )
                remote = self.reread()
                if remote.is_terminal:
                    return self.concluded(remote, event, reason_type)
                continue  # still in progress: the event did not land; send it again
            except pleo.PleoUnprocessable as exc:
                if not exc.has_type(pleo.ErrorType.INVALID_EXPORT_JOB_STATUS_CHANGE):
                    raise
                remote = self.reread()
                self.audit(
                    AuditStep.FINISH_REFUSED,
                    f"Pleo answered 422 INVALID_EXPORT_JOB_STATUS_CHANGE to '{event}'; the job "
                    f"is {remote.status} in Pleo. Not sent again.",
                    outcome=AuditEntry.Outcome.WARNING,
                    http=http_call("POST", EVENTS_PATH, 422),
                )
                if remote.is_terminal:
                    return self.concluded(remote, event, reason_type)
                raise Ended(None) from None
            except pleo.PleoNotFound:
                return self.vanished(http_call("POST", EVENTS_PATH, 404))
            else:
                return self.record_final(event, reason, reason_type)
        raise Pause(
            f"'{event}' was sent {MAX_FINAL_EVENT_ATTEMPTS} times with no known outcome; the "
            f"next run re-reads the job."
        )

    def record_final(
        self,
        event: pleo.JobEvent,
        reason: str | None,
        reason_type: pleo.JobFailureReasonType | None,
        *,
        http: HttpCall | None = None,
        note: str = "",
    ) -> str:
        with self.run.lease.guard():
            self.job.status = EVENT_STATUS[event]
            self.job.completed_at = self.job.completed_at or clock.now()
            self.job.processing_state = State.DONE
            if event == pleo.JobEvent.FAILED:
                self.job.failure_reason = reason or ""
                self.job.failure_reason_type = str(reason_type or "")
            self.job.save(
                update_fields=[
                    "status",
                    "completed_at",
                    "processing_state",
                    "failure_reason",
                    "failure_reason_type",
                    "updated_at",
                ]
            )
            failing.job_failing_end(job=self.job)
        counts = self.counts()
        if event == pleo.JobEvent.COMPLETED:
            step, outcome = AuditStep.COMPLETED, Outcome.COMPLETED
            message = f"Job completed: {plural(counts[0], 'item')} exported."
        elif event == pleo.JobEvent.COMPLETED_WITH_ERRORS:
            step, outcome = AuditStep.COMPLETED_WITH_ERRORS, Outcome.COMPLETED_WITH_ERRORS
            message = (
                f"Job completed with errors: {counts[0]} exported, {counts[1]} failed. "
                f"Bookkeepers see each failed item's reason in Pleo ('Review errors')."
            )
        else:
            step, outcome = AuditStep.JOB_FAILED, Outcome.FAILED_JOB
            message = f"Job marked failed in Pleo ({reason_type}): {reason}"
            self.run.job_errors[self.job.pleo_job_id] = message
        self.audit(
            step,
            f"{message} {note}".strip(),
            outcome=AuditEntry.Outcome.OK
            if event == pleo.JobEvent.COMPLETED
            else AuditEntry.Outcome.WARNING,
            http=http or http_call("POST", EVENTS_PATH, 202),
        )
        notifications.notification_request_job_outcome(
            company=self.run.company, job=self.job, cause=notifications.JobEnd.REPORTED
        )
        return outcome

    def concluded(
        self,
        remote: pleo.ExportJob,
        event: pleo.JobEvent,
        reason_type: pleo.JobFailureReasonType | None,
    ) -> str:
        """The job is final in Pleo after our final event: ours, or someone else's doing."""
        ours = remote.status == EVENT_STATUS[event] and (
            event != pleo.JobEvent.FAILED or remote.failure_type == reason_type
        )
        if ours:
            return self.record_final(
                event,
                remote.failure_reason,
                reason_type,
                http=http_call("GET", self.job_path, 200),
                note="(Our event had taken effect.)",
            )
        return self.mark_ended(remote, "when the job was to be finished")

    def mark_ended(self, remote: pleo.ExportJob, when: str, http: HttpCall | None = None) -> str:
        """The job is final in Pleo, not by our final event. Returns the run's outcome:
        ``job_expired`` / ``failed_job`` (an error, with what to do) or ``finished_elsewhere``."""
        end = job_end_in_pleo(job=self.job, remote=remote, when=when)
        with self.run.lease.guard():
            self.job.processing_state = State.DONE
            self.job.save(update_fields=["processing_state", "updated_at"])
            failing.job_failing_end(job=self.job, error=end.message if end.bad else "")
        message = end.message
        if not end.bad and self.any_booked():
            message += " Items already booked stay in the accounting system."
        if end.bad:
            self.run.job_errors[self.job.pleo_job_id] = end.message
        self.audit(
            AuditStep.JOB_ENDED,
            message,
            outcome=AuditEntry.Outcome.ERROR if end.bad else AuditEntry.Outcome.WARNING,
            http=http or http_call("GET", self.job_path, 200),
        )
        # Notification hook: a job of ours ended failed/expired in Pleo (kind job_expired).
        notifications.notification_request_job_outcome(
            company=self.run.company, job=self.job, cause=notifications.JobEnd.ENDED_IN_PLEO
        )
        return end.outcome

    def vanished(self, http: HttpCall | None) -> str:
        message = (
            f"Pleo no longer finds this job (404 EXPORT_NOT_FOUND); nothing more is sent for it. "
            f"{job_end_advice(job=self.job)}"
        )
        with self.run.lease.guard():
            self.job.processing_state = State.DONE
            self.job.save(update_fields=["processing_state", "updated_at"])
            failing.job_failing_end(job=self.job, error=message)
        self.run.job_errors[self.job.pleo_job_id] = message
        self.audit(AuditStep.JOB_ENDED, message, outcome=AuditEntry.Outcome.ERROR, http=http)
        notifications.notification_request_job_outcome(
            company=self.run.company, job=self.job, cause=notifications.JobEnd.NOT_FOUND
        )
        return Outcome.FAILED_JOB
