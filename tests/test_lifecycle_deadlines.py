"""The export lifecycle against a job's deadline, with the Pleo sandbox's clock
(``exports.services.expiry_guard``): a resumed job near its deadline is audited at risk, a slow
stage reports early, and a job that expires mid-run is mirrored and never retried.
"""

from __future__ import annotations

import pytest

from exports import clock
from exports.models import AuditEntry, ExportJob, JournalEntry, Trigger
from exports.services.start_flow import Outcome
from tests import lifecycle_support
from tests.lifecycle_support import audit, slow_bookings

pytestmark = pytest.mark.django_db

env = lifecycle_support.env  # the sandbox company of the lifecycle tests (a fixture)


def test_a_resumed_job_near_its_deadline_is_audited_at_risk_and_swept(env, monkeypatch):
    swept = []
    monkeypatch.setattr(
        "exports.services.sweep.company_check_enqueue",
        lambda **kw: swept.append(kw["company_id"]) or True,
    )
    from exports.services.sweep import leases_sweep_stale

    job_id = env.job(2)
    fault = env.state.add_fault("status", "GET", "/v3/export-items", status=503, count=None)
    assert env.run().outcome == Outcome.STARTED
    leases_sweep_stale()
    assert swept == []  # not at once: RECOVERY_RETRY_SECONDS after the run that paused
    env.state.advance_clock(60)
    clock.advance(60)
    leases_sweep_stale()
    assert swept == [env.company.pk]  # work_pending: the sweep picks the company up
    env.state.remove_fault(fault.id)
    # 50 minutes pass on both clocks in all: ten minutes are left of the hour.
    env.state.advance_clock(2940)
    clock.advance(2940)
    assert env.run(trigger=Trigger.RECOVERY, recover=True).outcome == Outcome.COMPLETED
    at_risk = audit(env, "at_risk")
    assert at_risk.outcome == AuditEntry.Outcome.WARNING
    assert "10 min left" in at_risk.message
    assert env.pleo(job_id)["job"]["status"] == "completed"


def test_a_slow_stage_reports_what_it_has_at_half_of_expires_in(env, monkeypatch):
    env.use_adapter(slow_bookings(monkeypatch, env.state, 700))
    job_id = env.job(6, expires_in=3600)
    # Six bookings take 4200 s: without early reports the job would expire at 3600 s.
    assert env.run().outcome == Outcome.COMPLETED
    assert [len(e["body"]) for e in env.puts(job_id)] == [3, 3]
    assert audit(env, "report_early") is not None
    assert env.pleo(job_id)["job"]["status"] == "completed"


def test_a_job_expiring_mid_run_is_mirrored_and_never_retried(env, monkeypatch):
    # Pleo's clock jumps alone.
    env.use_adapter(slow_bookings(monkeypatch, env.state, 4000, product_clock_too=False))
    job_id = env.job(2)
    assert env.run().outcome == Outcome.JOB_EXPIRED
    assert [e["status"] for e in env.puts(job_id)] == [422]
    assert env.final_events(job_id) == []
    job = ExportJob.objects.get(pleo_job_id=job_id)
    assert (job.status, job.failure_reason_type, job.processing_state) == (
        "failed",
        "job_expired",
        "done",
    )
    assert "Ask the bookkeeper to export again from Pleo" in audit(env, "job_ended").message
    assert env.run().outcome == Outcome.NOTHING_PENDING
    assert len(env.puts(job_id)) == 1

    # The user re-exports the same expenses: nothing is booked twice in the journal.
    entries = list(env.items(job_id))
    env.use_adapter("journal")
    again = env.job(2, accounting_entry_ids=entries)
    assert env.run().outcome == Outcome.COMPLETED
    assert JournalEntry.objects.count() == 2
    assert {i["externalId"] for i in env.pleo(again)["items"]} == {
        e.number for e in JournalEntry.objects.all()
    }
