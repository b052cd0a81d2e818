"""What happens to a job after it was started or resumed.

Until the export lifecycle (validation, items, adapter, item reports, final event) is built, a job
we own is recorded once as ready for processing, so the audit trail shows where it stands.
"""

from __future__ import annotations

from exports.models import ExportJob

READY = "ready_for_processing"


def carry_job(*, run, job: ExportJob, resumed: bool) -> str | None:
    """Carry a job we own on from where it stands. Returns a final outcome, or None if none yet."""
    if job.processing_state == READY:
        return None
    with run.lease.guard():
        job.processing_state = READY
        job.save(update_fields=["processing_state", "updated_at"])
    run.audit(
        "resumed" if resumed else "ready",
        "Our in-progress job was resumed (no 'started' sent again); ready for processing."
        if resumed
        else "Ready for processing.",
        job=job,
    )
    return None
