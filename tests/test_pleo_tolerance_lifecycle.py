"""Tolerance of Pleo's answers against the Pleo sandbox over real HTTP: error types in either
case, statuses we do not know met while carrying a job, and whether an early report refreshed
the job's deadline.

Where the sandbox has no switch for a reading (these tests predate them), a fault answers in the
other spelling, or the control API puts the job back the way Pleo would leave it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from exports import clock
from exports.adapters import ADAPTERS
from exports.models import AuditEntry, Company, ExportItemRecord, ExportJob, JournalEntry
from exports.pleo import PleoClient
from exports.services.start_flow import Outcome
from pleo_sandbox.clock import parse_iso
from tests import lifecycle_support
from tests.lifecycle_support import EVENTS, SlowJournal

pytestmark = pytest.mark.django_db

env = lifecycle_support.env  # the sandbox company of the lifecycle tests (a fixture)

PAGE = {"currentRequestPagination": {"parameters": {}}, "hasNextPage": False}


def audits(env, step) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(company=env.company, step=step).order_by("id"))


def lowercase_error(status, error_type, message="refused"):
    return {"status": status, "body": {"type": error_type.lower(), "message": message}}


# --- point 2: error types in any case -----------------------------------------------------------


def test_a_lowercase_422_to_started_is_a_start_conflict(env):
    job_id = env.job(2)
    env.state.add_fault(
        "status",
        "POST",
        EVENTS,
        body_match={"event": "started"},
        **lowercase_error(422, "INVALID_EXPORT_JOB_STATUS_CHANGE"),
    )
    assert env.run().outcome == Outcome.COMPLETED  # the job is listed again and started
    assert len(audits(env, "start_conflict")) == 1
    assert not audits(env, "error")
    assert env.pleo(job_id)["job"]["status"] == "completed"


def test_a_lowercase_422_to_the_final_event_is_settled_by_rereading(env):
    job_id = env.job(2)
    env.state.add_fault(
        "status",
        "POST",
        EVENTS,
        apply=True,
        body_match={"event": "completed"},
        **lowercase_error(422, "INVALID_EXPORT_JOB_STATUS_CHANGE"),
    )
    assert env.run().outcome == Outcome.COMPLETED
    assert len(env.final_events(job_id)) == 1
    assert audits(env, "finish_refused")[0].http_status == 422


def test_a_lowercase_422_to_an_item_update_ends_the_expired_job(env, monkeypatch):
    put = PleoClient.update_export_job_items

    def expire_first(self, job_id, updates):
        env.state.advance_clock(4000)
        return put(self, job_id, updates)

    monkeypatch.setattr(PleoClient, "update_export_job_items", expire_first)
    job_id = env.job(2)
    env.state.add_fault(
        "status",
        "PUT",
        f"/v3/export-jobs/{job_id}/items",
        **lowercase_error(422, "EXPORT_JOB_STATUS_UNPROCESSABLE", "Export job is finished."),
    )
    assert env.run().outcome == Outcome.JOB_EXPIRED
    job = ExportJob.objects.get(pleo_job_id=job_id)
    assert (job.status, job.failure_reason_type) == ("failed", "job_expired")
    assert "export again from Pleo" in audits(env, "job_ended")[0].message


def test_a_lowercase_missing_contra_accounts_fails_the_job(env):
    job_id = env.job(2)
    env.state.add_fault(
        "status",
        "GET",
        "/v3/export-items",
        **lowercase_error(400, "MISSING_CONTRA_ACCOUNTS", "Contra accounts missing"),
    )
    assert env.run().outcome == Outcome.FAILED_JOB
    job = env.pleo(job_id)["job"]
    assert (job["status"], job["failureReasonType"]) == ("failed", "missing_configuration")
    assert len(audits(env, "export_items_refused")) == 1


# --- point 1: statuses we do not know while carrying a job --------------------------------------


def test_items_in_a_status_we_do_not_know_are_never_booked(env):
    job_id = env.job(3)
    items = [{k: v for k, v in i.items() if k != "kind"} for i in env.pleo(job_id)["items"]]
    items[0]["status"] = "on_hold"
    odd = items[0]["accountingEntryId"]
    env.state.add_fault(
        "status",
        "GET",
        f"/v3/export-jobs/{job_id}/items",
        status=200,
        body={"data": items, "pagination": {**PAGE, "hasPreviousPage": False}},
    )
    assert env.run().outcome == Outcome.COMPLETED_WITH_ERRORS
    read = audits(env, "items_read")[0]
    assert read.outcome == AuditEntry.Outcome.WARNING
    assert "1 in a status we do not know ('on_hold')" in read.message
    assert odd not in env.put_ids(job_id)  # never reported, never booked
    assert not ExportItemRecord.objects.filter(accounting_entry_id=odd).exists()
    assert JournalEntry.objects.count() == 2
    assert env.pleo(job_id)["job"]["status"] == "completed_with_errors"


def test_our_job_turning_to_a_status_we_do_not_know_mid_run_holds_the_company(env, monkeypatch):
    job_id = env.job(2, created_at=env.state.now() - timedelta(minutes=5))
    later = env.job(1)
    put = PleoClient.update_export_job_items

    def paused_in_pleo(self, job_id, updates):
        # Pleo refuses the report, and from now on shows the job in a status we do not know.
        paused = {**env.pleo(str(job_id))["job"], "status": "paused_by_admin"}
        env.state.add_fault(
            "status",
            "GET",
            f"/v3/export-jobs/{job_id}",
            status=200,
            body={"data": paused},
            count=None,
        )
        return put(self, job_id, updates)

    monkeypatch.setattr(PleoClient, "update_export_job_items", paused_in_pleo)
    env.state.add_fault(
        "status",
        "PUT",
        f"/v3/export-jobs/{job_id}/items",
        status=422,
        body={"type": "EXPORT_JOB_STATUS_UNPROCESSABLE", "message": "paused"},
    )
    result = env.run()
    assert result.outcome == Outcome.UNKNOWN_STATUS
    errors = audits(env, "unknown_status")
    assert len(errors) == 1 and errors[0].outcome == AuditEntry.Outcome.ERROR
    assert Company.objects.get(pk=env.company.pk).unknown_status == "paused_by_admin"
    assert env.final_events(job_id) == []
    assert env.run().outcome == Outcome.UNKNOWN_STATUS
    assert env.pleo(later)["job"]["status"] == "pending"  # never started while held
    assert len(audits(env, "unknown_status")) == 1


# --- point 4: did the early report refresh the deadline? ----------------------------------------


@pytest.fixture
def slow(env, monkeypatch):
    monkeypatch.setitem(ADAPTERS, SlowJournal.name, SlowJournal)
    monkeypatch.setattr(SlowJournal, "sandbox_state", env.state)
    monkeypatch.setattr(SlowJournal, "seconds", 700)
    env.use_adapter(SlowJournal.name)
    return env


def job_reads(env, job_id) -> list[dict]:
    return env.state.requests("GET", f"/v3/export-jobs/{job_id}")


def test_after_an_early_report_the_job_is_read_again_and_its_new_deadline_audited(slow):
    env = slow
    job_id = env.job(6, expires_in=3600)
    assert env.run().outcome == Outcome.COMPLETED
    early = audits(env, "report_early")
    checked = audits(env, "deadline_checked")
    assert len(early) == len(checked) == 2  # at 2100 s and at 4200 s
    assert all(entry.outcome == AuditEntry.Outcome.INFO for entry in checked)
    assert all("refreshed the job" in entry.message for entry in checked)
    assert checked[0].http_method == "GET"
    # One GET to confirm the job before starting it, one after each early report.
    assert len(job_reads(env, job_id)) == 1 + len(early)
    assert audits(env, "deadline_not_refreshed") == []
    assert env.pleo(job_id)["job"]["status"] == "completed"


def test_a_deadline_the_early_report_did_not_move_is_kept_and_the_job_finished_before_it(
    slow, monkeypatch
):
    env = slow
    put = PleoClient.update_export_job_items

    def put_without_refresh(self, job_id, updates):
        # Pleo as it may be: a PUT of item results does not move lastUpdatedAt.
        before = env.pleo(str(job_id))["job"]["lastUpdatedAt"]
        result = put(self, job_id, updates)
        env.state.set_job_status(str(job_id), "in_progress", last_updated_at=parse_iso(before))
        return result

    monkeypatch.setattr(PleoClient, "update_export_job_items", put_without_refresh)
    job_id = env.job(6, expires_in=3600)
    started = clock.now()
    # Each booking takes 700 s: without the guard the sixth would end at 4200 s, after Pleo's
    # deadline (3600 s after 'started'), and the job would expire with booked items unreported.
    assert env.run().outcome == Outcome.COMPLETED_WITH_ERRORS
    (kept,) = audits(env, "deadline_not_refreshed")
    assert kept.outcome == AuditEntry.Outcome.WARNING
    assert "did not move its deadline" in kept.message
    (guard,) = audits(env, "deadline_guard")
    assert guard.message.startswith("2 items not booked")
    assert (clock.now() - started).total_seconds() < 3600 - 360  # finished with a margin
    pleo = env.pleo(job_id)
    assert pleo["job"]["status"] == "completed_with_errors"
    statuses = sorted(item["status"] for item in pleo["items"])
    assert statuses == ["failed", "failed", "successful", "successful", "successful", "successful"]
    failed = [item for item in pleo["items"] if item["status"] == "failed"]
    assert all("export it again from Pleo" in item["failureReason"] for item in failed)
    assert JournalEntry.objects.count() == 4  # nothing booked that Pleo was not told of
    assert len(job_reads(env, job_id)) == 2  # one early report, one extra GET
    assert len(audits(env, "report_early")) == 1  # none after the refresh proved untrusted
