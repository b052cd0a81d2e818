"""Regression test for the two-owner bug the state machine found (``test_state_machine.py``).

Shrunk example: our ``started`` times out unprocessed, the re-read shows the job still pending,
our second ``started`` meets a job another integration has just started (422). The flow used to
re-read once more, see ``in_progress`` and claim the job as ours, so two integrations carried
the same job (items booked twice, in two systems). It now leaves the job to its owner.
"""

from __future__ import annotations

import pytest

from exports.models import AuditEntry, Company, ExportJob, Trigger
from exports.services.start_flow import Outcome, company_check_run
from tests.reliability import support

pytestmark = pytest.mark.django_db

EVENTS = "/v3/export-job-events"


def test_timed_out_started_then_another_integration_starts_the_job_is_not_claimed(
    pleo_sandbox, settings
):
    settings.PLEO_READ_TIMEOUT = 0.2
    settings.PLEO_BACKOFF_BASE = 0
    settings.PLEO_BACKOFF_MAX = 0
    seeded = support.seed_companies(pleo_sandbox, 1, prefix="Two owners")
    remote, company = seeded.companies[0]
    state = seeded.state
    job_id = seeded.add_job(remote.id, items=2)
    state.add_fault("stall", "POST", EVENTS, body_match={"event": "started"}, seconds=0.4)
    state.add_fault("other_integration_starts")

    result = company_check_run(company=Company.objects.get(pk=company.pk), trigger=Trigger.SCHEDULE)

    assert result.outcome == Outcome.CONFLICT
    started = [e for e in state.get_job(job_id)["events"] if e["event"] == "started"]
    assert [(e["identity"], e["accepted"]) for e in started if e["accepted"]] == [
        ("other-integration", True)
    ]
    local = ExportJob.objects.get(pleo_job_id=job_id)
    assert local.claim == ExportJob.Claim.ELSEWHERE  # not ours: one owner
    assert not state.requests("PUT", f"/v3/export-jobs/{job_id}/items")  # we never carried it
    conflict = AuditEntry.objects.get(company=company, step="start_conflict")
    assert conflict.outcome == AuditEntry.Outcome.WARNING
    assert "Adopt job" in conflict.message
