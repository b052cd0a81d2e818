"""What a run's outcome (``runs.Outcome``, the codes ``check_exports`` prints and
``Company.last_check_outcome`` stores) reads as on a page: the one mapping from codes to words.

The codes stay the stable interface (command line, JSON, filters); people read the labels. A code
without a label here (one added later) still reads as words: ``job_expired`` → "Job expired".
"""

from __future__ import annotations

from exports.services.runs import Outcome

OUTCOME_LABELS: dict[str, str] = {
    Outcome.STARTED: "Started a job",
    Outcome.RESUMED: "Resumed a job",
    Outcome.NOTHING_PENDING: "Nothing pending",
    Outcome.BUSY: "Busy: another run has the company",
    Outcome.OWNED_ELSEWHERE: "Job owned by another integration",
    Outcome.CONFLICT: "Conflict: another integration took the job",
    Outcome.EXPIRED_SKIPPED: "Expired job skipped",
    Outcome.FAILED: "Failed",
    Outcome.COMPLETED: "Completed",
    Outcome.COMPLETED_WITH_ERRORS: "Completed with errors",
    Outcome.FAILED_JOB: "Job failed",
    Outcome.JOB_EXPIRED: "Job expired in Pleo",
    Outcome.FINISHED_ELSEWHERE: "Job finished elsewhere",
    Outcome.UNKNOWN_STATUS: "Held: job status unknown",
    Outcome.DEFERRED: "Deferred: request budget or run limit",
}


def outcome_label(code: str | None) -> str:
    """``"nothing_pending"`` → ``"Nothing pending"``; ``""`` → ``""``."""
    if not code:
        return ""
    return OUTCOME_LABELS.get(code) or code.replace("_", " ").strip().capitalize()


# Outcomes that mean something went wrong (shown in red).
BAD_OUTCOMES = Outcome.FAILURES | {Outcome.COMPLETED_WITH_ERRORS}


def outcome_is_bad(code: str | None) -> bool:
    return code in BAD_OUTCOMES
