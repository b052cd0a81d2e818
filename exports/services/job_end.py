"""What it means when a job of ours is final in Pleo without our final event.

* failed in Pleo with ``job_expired`` (or Pleo's raw ``expired``): the outcome ``job_expired``;
* failed for another reason: ``failed_job``;
* completed (with or without errors): ``finished_elsewhere``, someone else finished it.

A failed or expired job is an error with Pleo's reason, and its message says what to do and how
far we got: "ask the bookkeeper to export again from Pleo; N items were booked and reported, M
were not".
"""

from __future__ import annotations

from dataclasses import dataclass

from exports import pleo
from exports.models import ExportJob
from exports.notifications.render import item_counts
from exports.services.runs import Outcome


@dataclass(frozen=True)
class EndInPleo:
    outcome: str  # an ``Outcome`` of the start flow
    message: str
    bad: bool  # failed or expired: an error


def job_expired_in_pleo(*, remote: pleo.ExportJob) -> bool:
    return (
        remote.failure_type == pleo.JobFailureReasonType.JOB_EXPIRED
        or remote.raw_status == pleo.EXPIRED_JOB_STATUS
    )


def job_end_advice(*, job: ExportJob) -> str:
    """ "Ask the bookkeeper to export again from Pleo; N items were booked and reported, M were
    not." (plus the items booked but not reported, which stay booked)."""
    counts = item_counts(job)
    total = max(counts.total, counts.reported_ok + counts.booked_unreported + counts.failed)
    not_reported = max(total - counts.reported_ok, 0)
    text = (
        f"Ask the bookkeeper to export again from Pleo; {counts.reported_ok} "
        f"{'item was' if counts.reported_ok == 1 else 'items were'} booked and reported, "
        f"{not_reported} {'was' if not_reported == 1 else 'were'} not."
    )
    if counts.booked_unreported:
        text += (
            f" {counts.booked_unreported} of those "
            f"{'was' if counts.booked_unreported == 1 else 'were'} booked in the accounting "
            f"system but not reported to Pleo; they stay booked."
        )
    return text


def job_end_in_pleo(*, job: ExportJob, remote: pleo.ExportJob, when: str) -> EndInPleo:
    """``remote`` (terminal) is what Pleo shows of our ``job``; ``when`` says where we were."""
    if remote.status != pleo.JobStatus.FAILED:
        return EndInPleo(
            Outcome.FINISHED_ELSEWHERE,
            f"The job was finished outside this bridge {when}: Pleo shows it {remote.status}. "
            f"Nothing more is sent for it.",
            bad=False,
        )
    reason_type = remote.failure_reason_type or "no reason type"
    reason = remote.failure_reason or "no reason given"
    if job_expired_in_pleo(remote=remote):
        head, outcome = "The job expired in Pleo", Outcome.JOB_EXPIRED
    else:
        head, outcome = "Pleo failed the job", Outcome.FAILED_JOB
    return EndInPleo(
        outcome,
        f"{head} {when} ({reason_type}: {reason}); nothing more is sent for it. "
        f"{job_end_advice(job=job)}",
        bad=True,
    )
