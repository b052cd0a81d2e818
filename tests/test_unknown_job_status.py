"""A job status we do not know never stops a company, nor races a job of ours.

HTTP faked at the transport (``responses``), as in ``tests/test_start_flow.py``. A job that is not
ours is skipped and audited once; a job of ours holds the company (audited once, ERROR) until Pleo
shows a status we know or an operator releases the company; ``expired`` is failed/job_expired.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from exports import clock
from exports.models import AuditEntry, Company, ExportJob, Trigger
from exports.services.start_flow import Outcome
from exports.services.unknown_status import company_release_unknown_status
from tests import start_flow_fakes
from tests.client_fakes import page
from tests.factories import make_job
from tests.start_flow_fakes import EVENTS, LIST, run
from tests.start_flow_fakes import company as company  # noqa: F401  (fixture)
from tests.start_flow_fakes import fake as fake  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


def job_json(company, **extra):
    """A job of ``company`` with no items (see ``start_flow_fakes.job_json``)."""
    return start_flow_fakes.job_json(company, **{"numberOfItems": 0, **extra})


@pytest.fixture(autouse=True)
def _events_accepted(fake):
    """Jobs that get started here have no items: the lifecycle completes them at once."""
    fake.post(EVENTS, status=202)


def events_for(fake, job) -> list[str]:
    import json

    return [
        json.loads(c.request.body)["event"]
        for c in fake.calls
        if c.request.method == "POST" and json.loads(c.request.body)["jobId"] == job["id"]
    ]


def gets_of(fake, job) -> int:
    return sum(
        1 for c in fake.calls if c.request.method == "GET" and c.request.url.endswith(job["id"])
    )


def audits(company, step) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(company=company, step=step).order_by("id"))


def ours(company, job, status="in_progress") -> ExportJob:
    return make_job(
        company,
        pleo_job_id=job["id"],
        status=status,
        created_at=clock.now() - timedelta(minutes=30),
        claim=ExportJob.Claim.OURS,
        processing_state="reporting",
    )


# --- a job of ours ------------------------------------------------------------------------------


def test_our_job_in_an_unknown_status_holds_the_company_until_pleo_shows_a_known_one(company, fake):
    held = job_json(company, status="on_hold", created_minutes_ago=30)
    pending = job_json(company, created_minutes_ago=5)
    ours(company, held)
    fake.get(f"{LIST}/{held['id']}", json={"data": held})
    fake.get(f"{LIST}/{pending['id']}", json={"data": pending})
    fake.get(LIST, json=page([pending]))  # the filtered list does not show the held job

    # Recovery re-reads our claim: no failure, and the pending job is not started.
    first = run(company, trigger=Trigger.RECOVERY, recover=True)
    assert first.outcome == Outcome.UNKNOWN_STATUS
    assert "on_hold" in first.error
    later = [run(company) for _ in range(2)]
    assert [r.outcome for r in later] == [Outcome.UNKNOWN_STATUS] * 2
    assert events_for(fake, pending) == []
    assert gets_of(fake, held) == 3  # each run reads the holding job once
    errors = audits(company, "unknown_status")
    assert len(errors) == 1  # once, not on every run
    assert errors[0].outcome == AuditEntry.Outcome.ERROR
    assert "'on_hold'" in errors[0].message and "Release company" in errors[0].message
    assert not AuditEntry.objects.filter(company=company, step="error").exists()
    refreshed = Company.objects.get(pk=company.pk)
    assert refreshed.unknown_status_job_id == uuid.UUID(held["id"])
    assert refreshed.unknown_status == "on_hold"
    assert refreshed.last_check_outcome == Outcome.UNKNOWN_STATUS
    assert ExportJob.objects.get(pleo_job_id=held["id"]).status == ExportJob.Status.UNKNOWN

    # Pleo shows a status we know again: the hold ends and the next job is started.
    fake.replace("GET", f"{LIST}/{held['id']}", json={"data": {**held, "status": "completed"}})
    result = run(company)
    assert result.outcome == Outcome.COMPLETED
    assert events_for(fake, pending) == ["started", "completed"]
    cleared = audits(company, "unknown_status_cleared")
    assert len(cleared) == 1 and "no longer held" in cleared[0].message
    assert Company.objects.get(pk=company.pk).unknown_status_job_id is None


def test_a_different_unknown_value_is_audited_again(company, fake):
    held = job_json(company, status="on_hold")
    ours(company, held)
    fake.get(f"{LIST}/{held['id']}", json={"data": held})
    fake.get(LIST, json=page([]))
    run(company, recover=True)
    run(company)
    fake.replace("GET", f"{LIST}/{held['id']}", json={"data": {**held, "status": "frozen"}})
    run(company)
    run(company)
    assert [e.message.split("'")[1] for e in audits(company, "unknown_status")] == [
        "on_hold",
        "frozen",
    ]


def test_an_operator_releases_the_company_from_the_admin(
    company, fake, client, sent, django_capture_on_commit_callbacks
):
    held = job_json(company, status="on_hold", created_minutes_ago=30)
    pending = job_json(company, created_minutes_ago=5)
    ours(company, held)
    fake.get(f"{LIST}/{held['id']}", json={"data": held})
    fake.get(f"{LIST}/{pending['id']}", json={"data": pending})
    fake.get(LIST, json=page([pending]))
    assert run(company, recover=True).outcome == Outcome.UNKNOWN_STATUS

    changelist = reverse("admin:exports_company_changelist")
    clerk = User.objects.create_user("clerk", "c@example.com", "pw", is_staff=True)
    clerk.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_company", "view_all_companies"])
    )
    client.force_login(clerk)
    assert 'value="release_unknown_status"' not in client.get(changelist).content.decode()
    client.post(changelist, {"action": "release_unknown_status", "_selected_action": [company.pk]})
    assert Company.objects.get(pk=company.pk).unknown_status_job_id is not None

    clerk.user_permissions.add(Permission.objects.get(codename="release_unknown_status"))
    clerk = User.objects.get(pk=clerk.pk)  # permissions are cached per user object
    client.force_login(clerk)
    assert 'value="release_unknown_status"' in client.get(changelist).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            changelist, {"action": "release_unknown_status", "_selected_action": [company.pk]}
        )
    assert Company.objects.get(pk=company.pk).unknown_status_job_id is None
    released = audits(company, "released")
    assert len(released) == 1
    assert released[0].outcome == AuditEntry.Outcome.WARNING
    assert "clerk" in released[0].message and "'on_hold'" in released[0].message
    assert released[0].export_job.pleo_job_id == uuid.UUID(held["id"])
    assert [args[1:3] for args in sent] == [(company.pk, "manual")]  # a check was queued

    # The next run starts the pending job; the released job, still on hold, holds nothing.
    calls_before = gets_of(fake, held)
    assert run(company).outcome == Outcome.COMPLETED
    assert events_for(fake, pending) == ["started", "completed"]
    assert gets_of(fake, held) == calls_before
    fake.replace("GET", LIST, json=page([]))
    assert run(company, recover=True).outcome == Outcome.NOTHING_PENDING
    assert len(audits(company, "unknown_status")) == 1  # not held again by the same value


def test_release_of_a_company_that_is_not_held_does_nothing(company):
    assert company_release_unknown_status(company=company, user_name="op") is False
    assert audits(company, "released") == []


def test_an_unknown_status_after_our_started_had_an_unknown_outcome_holds(company, fake):
    pending = job_json(company)
    fake.get(LIST, json=page([pending]))
    fake.get(f"{LIST}/{pending['id']}", json={"data": pending})
    fake.get(f"{LIST}/{pending['id']}", json={"data": {**pending, "status": "starting_up"}})
    fake.replace("POST", EVENTS, status=503)
    result = run(company)
    assert result.outcome == Outcome.UNKNOWN_STATUS
    job = ExportJob.objects.get(pleo_job_id=pending["id"])
    assert job.claim == ExportJob.Claim.STARTING  # kept: our 'started' may have landed
    assert Company.objects.get(pk=company.pk).unknown_status_job_id == job.pleo_job_id
    assert len(events_for(fake, pending)) == 1  # never sent again while unknown


# --- a job that is not ours ---------------------------------------------------------------------


def test_a_job_not_ours_in_an_unknown_status_is_skipped_and_audited_once(company, fake):
    odd = job_json(company, created_minutes_ago=30)
    pending = job_json(company, created_minutes_ago=5)
    fake.get(LIST, json=page([odd, pending]))
    fake.get(LIST, json=page([odd]))  # once the newer one is finished
    fake.get(f"{LIST}/{odd['id']}", json={"data": {**odd, "status": "archived"}})
    fake.get(f"{LIST}/{pending['id']}", json={"data": pending})
    assert run(company).outcome == Outcome.COMPLETED
    assert run(company).outcome == Outcome.NOTHING_PENDING
    assert events_for(fake, odd) == []
    assert events_for(fake, pending) == ["started", "completed"]
    warnings = audits(company, "unknown_status")
    assert len(warnings) == 1
    assert warnings[0].outcome == AuditEntry.Outcome.WARNING
    assert "'archived'" in warnings[0].message and "not started" in warnings[0].message
    assert Company.objects.get(pk=company.pk).unknown_status_job_id is None


def test_a_listed_job_in_an_unknown_status_is_never_started(company, fake):
    odd = job_json(company, status="queued_for_review", created_minutes_ago=30)
    fake.get(LIST, json=page([odd]))
    assert run(company).outcome == Outcome.NOTHING_PENDING
    assert run(company).outcome == Outcome.NOTHING_PENDING
    assert events_for(fake, odd) == []
    assert len(audits(company, "unknown_status")) == 1


# --- expired ------------------------------------------------------------------------------------


def test_our_expired_job_is_failed_job_expired_and_the_company_goes_on(company, fake):
    expired = job_json(company, status="expired", created_minutes_ago=90)
    pending = job_json(company, created_minutes_ago=5)
    ours(company, expired)
    fake.get(f"{LIST}/{expired['id']}", json={"data": expired})
    fake.get(f"{LIST}/{pending['id']}", json={"data": pending})
    fake.get(LIST, json=page([pending]))
    fake.get(LIST, json=page([]))
    result = run(company, trigger=Trigger.RECOVERY, recover=True)
    # The next job completed, but the run reports the expired one.
    assert (result.outcome, str(result.job_id)) == (Outcome.JOB_EXPIRED, expired["id"])
    job = ExportJob.objects.get(pleo_job_id=expired["id"])
    assert (job.status, job.failure_reason_type) == ("failed", "job_expired")
    assert job.last_payload["status"] == "expired"
    assert [a.outcome for a in audits(company, "job_ended")] == [AuditEntry.Outcome.ERROR]
    assert audits(company, "unknown_status") == []
    assert events_for(fake, pending) == ["started", "completed"]


def test_a_pending_job_found_expired_is_skipped_like_a_failed_one(company, fake):
    listed = job_json(company)
    fake.get(LIST, json=page([listed]))
    fake.get(f"{LIST}/{listed['id']}", json={"data": {**listed, "status": "expired"}})
    assert run(company).outcome == Outcome.NOTHING_PENDING
    assert events_for(fake, listed) == []
    skipped = audits(company, "finished_elsewhere")
    assert len(skipped) == 1 and "failed" in skipped[0].message
