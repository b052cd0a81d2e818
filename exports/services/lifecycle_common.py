"""What the export lifecycle's parts share: its states, limits, stops and item keys.

See ``exports.services.lifecycle`` for the lifecycle itself.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from exports import pleo
from exports.adapters import ValidationResult
from exports.audit import HttpCall


class State(StrEnum):
    """Values of ``ExportJob.processing_state``."""

    VALIDATING = "validating"
    ITEMS = "items"
    REPORTING = "reporting"
    FINISHING = "finishing"
    DONE = "done"
    NOT_FOUND = "not_found"  # Pleo no longer finds the job


PAST_VALIDATION = frozenset({State.ITEMS, State.REPORTING, State.FINISHING, State.DONE})
OPEN_ITEM = frozenset({pleo.ItemStatus.PENDING, pleo.ItemStatus.IN_PROGRESS})
FINAL_ITEM = frozenset(
    {pleo.ItemStatus.SUCCESSFUL, pleo.ItemStatus.FAILED, pleo.ItemStatus.ABANDONED}
)
MAX_FINAL_EVENT_ATTEMPTS = 3
MAX_REPORT_ATTEMPTS = 3
# Report what is ready once this share of expiresIn has passed since our last update.
REPORT_AFTER_SHARE = 0.5
# Audit the job as at risk when less than this share of expiresIn is left.
AT_RISK_SHARE = 0.25
EVENT_STATUS = {
    pleo.JobEvent.COMPLETED: pleo.JobStatus.COMPLETED,
    pleo.JobEvent.COMPLETED_WITH_ERRORS: pleo.JobStatus.COMPLETED_WITH_ERRORS,
    pleo.JobEvent.FAILED: pleo.JobStatus.FAILED,
}
# Item failure types that are also job failure types (used when every item failed alike).
JOB_TYPES = {
    member.value
    for member in pleo.JobFailureReasonType
    if member != pleo.JobFailureReasonType.UNKNOWN
}

_KEY_NAMESPACE = uuid.UUID("6f1d8a4e-4b0c-5a7e-9f43-2d1c0e7b9a55")
EVENTS_PATH = "/v3/export-job-events"
EXPORT_ITEMS_PATH = "/v3/export-items"


def idempotency_key(job_id: uuid.UUID | str, accounting_entry_id: uuid.UUID | str) -> str:
    """The same key for the same item of the same job, in every run and process."""
    return str(uuid.uuid5(_KEY_NAMESPACE, f"pleo-export/{job_id}/{accounting_entry_id}"))


class Pause(Exception):
    """Stop here; the job stays in progress for the next run."""

    def __init__(self, message: str, http: HttpCall | None = None) -> None:
        super().__init__(message)
        self.http = http


class Ended(Exception):
    """The job is over (or must not be touched again by this run); ``outcome`` for the run."""

    def __init__(self, outcome: str | None) -> None:
        super().__init__(outcome or "")
        self.outcome = outcome


class FailJob(Exception):
    """The job cannot be exported: send ``failed`` with this reason."""

    def __init__(self, result: ValidationResult) -> None:
        super().__init__(result.message)
        self.result = result


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
