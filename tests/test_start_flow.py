"""The detect-and-start flow, every branch, with HTTP faked at the transport (``responses``)."""

import json
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from exports import clock
from exports.models import AuditEntry, Company, Credential, ExportJob, Trigger
from exports.services import leases
from exports.services.start_flow import Outcome
from tests.client_fakes import page
from tests.client_fakes import timestamp as iso
from tests.factories import make_job
from tests.start_flow_fakes import EVENTS, LIST, job_json, run
from tests.start_flow_fakes import company as company  # noqa: F401  (fixture)
from tests.start_flow_fakes import fake as fake  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


def posts(fake):
    return [c for c in fake.calls if c.request.method == "POST"]


def steps(company):
    return list(
        AuditEntry.objects.filter(company=company)
        .order_by("created_at", "id")
        .values_list("step", flat=True)
    )


def test_nothing_pending_writes_no_audit_and_records_last_check(company, fake):
    fake.get(LIST, json=page([]))
    result = run(company)
    assert result.outcome == Outcome.NOTHING_PENDING
    assert steps(company) == []
    company.refresh_from_db()
    assert company.last_check_outcome == "nothing_pending"
    assert company.last_check_at is not None
    assert company.lease_token is None
    request = fake.calls[0].request
    assert "statuses=pending" in request.url and "statuses=in_progress" in request.url
    assert f"company_id={company.pleo_company_id}" in request.url
    assert request.headers["X-Request-Id"] == str(result.run_id)


def test_oldest_pending_is_confirmed_and_started(company, fake):
    newer = job_json(company, created_minutes_ago=5)
    older = job_json(company, created_minutes_ago=30)
    fake.get(LIST, json=page([newer, older]))  # not in order: we sort
    fake.get(LIST, json=page([newer]))  # once the oldest is finished
    fake.get(f"{LIST}/{older['id']}", json={"data": older})
    fake.get(f"{LIST}/{newer['id']}", json={"data": newer})
    fake.post(EVENTS, status=202)
    result = run(company, trigger=Trigger.WEBHOOK)
    assert result.outcome == Outcome.COMPLETED
    assert str(result.job_id) == older["id"]
    bodies = [json.loads(c.request.body) for c in posts(fake)]
    started = [b["jobId"] for b in bodies if b["event"] == "started"]
    # Oldest first, and the next job only after the first one's final event, in the same run.
    assert started == [older["id"], newer["id"]]
    assert bodies.index({"jobId": older["id"], "event": "completed"}) < bodies.index(
        {"jobId": newer["id"], "event": "started"}
    )
    job = ExportJob.objects.get(pleo_job_id=older["id"])
    assert job.claim == ExportJob.Claim.OURS
    assert job.claim_run_id == result.run_id
    assert job.status == "completed"
    # Pleo's list said neither; ours: when Pleo accepted 'started', then our final event.
    assert older["startedAt"] is None and older["completedAt"] is None
    assert job.claimed_at <= job.started_at <= job.completed_at
    assert steps(company) == ["selected", "started", "validated", "items_read", "completed"] * 2
    assert set(AuditEntry.objects.values_list("trigger", flat=True)) == {"webhook"}
    assert set(AuditEntry.objects.values_list("run_id", flat=True)) == {result.run_id}
    started = AuditEntry.objects.get(step="started", export_job=job)
    assert (started.http_method, started.http_path, started.http_status) == (
        "POST",
        "/v3/export-job-events",
        202,
    )


def test_ties_on_created_at_are_broken_by_id(company, fake):
    created = iso(clock.now() - timedelta(minutes=5))
    a = job_json(company, job_id=uuid.UUID(int=2), createdAt=created)
    b = job_json(company, job_id=uuid.UUID(int=1), createdAt=created)
    fake.get(LIST, json=page([a, b]))
    fake.get(f"{LIST}/{b['id']}", json={"data": b})
    fake.get(f"{LIST}/{a['id']}", json={"data": a})
    fake.post(EVENTS, status=202)
    assert str(run(company).job_id) == b["id"]
    started = [
        json.loads(c.request.body)["jobId"] for c in posts(fake) if b'"started"' in c.request.body
    ]
    assert started == [b["id"], a["id"]]


def test_422_is_a_start_conflict_never_retried_and_relisted(company, fake):
    job = job_json(company)
    fake.get(LIST, json=page([job]))
    fake.get(f"{LIST}/{job['id']}", json={"data": job})
    fake.post(
        EVENTS,
        status=422,
        json={
            "type": "INVALID_EXPORT_JOB_STATUS_CHANGE",
            "message": "Export Job status change failed",
        },
    )
    running = dict(job, status="in_progress")
    fake.get(LIST, json=page([running]))  # the relist: someone else runs it
    result = run(company)
    assert result.outcome == Outcome.CONFLICT
    assert len(posts(fake)) == 1
    assert steps(company) == ["selected", "start_conflict", "owned_elsewhere"]
    assert ExportJob.objects.get(pleo_job_id=job["id"]).claim == ExportJob.Claim.ELSEWHERE


def test_unknown_outcome_then_in_progress_is_ours(company, fake):
    job = job_json(company)
    fake.get(LIST, json=page([job]))
    fake.get(f"{LIST}/{job['id']}", json={"data": job})
    fake.post(EVENTS, status=502, body="Bad gateway")
    fake.post(EVENTS, status=202)  # the lifecycle's final event
    fake.get(f"{LIST}/{job['id']}", json={"data": dict(job, status="in_progress")})
    result = run(company)
    assert result.outcome == Outcome.COMPLETED
    assert [json.loads(c.request.body)["event"] for c in posts(fake)] == ["started", "completed"]
    assert ExportJob.objects.get(pleo_job_id=job["id"]).claim == ExportJob.Claim.OURS
    assert steps(company)[:4] == ["selected", "start_unknown", "started", "validated"]


def test_unknown_outcome_still_pending_posts_again(company, fake):
    job = job_json(company)
    fake.get(LIST, json=page([job]))
    fake.get(f"{LIST}/{job['id']}", json={"data": job})
    fake.post(EVENTS, status=503)
    fake.post(EVENTS, status=202)
    result = run(company)
    assert result.outcome == Outcome.COMPLETED
    assert [json.loads(c.request.body)["event"] for c in posts(fake)][:2] == ["started"] * 2


def test_unknown_outcome_then_pending_then_422_is_not_claimed(company, fake):
    """Regression (reliability state machine): our 'started' times out, the re-read shows the
    job still pending, the next 'started' gets 422 because another integration started the job
    meanwhile. The job used to be claimed as ours (two owners); it is left alone now."""
    job = job_json(company)
    fake.get(LIST, json=page([job]))
    fake.get(f"{LIST}/{job['id']}", json={"data": job})
    fake.post(EVENTS, status=500)
    fake.get(f"{LIST}/{job['id']}", json={"data": job})  # re-read: still pending
    fake.post(EVENTS, status=422, json={"type": "INVALID_EXPORT_JOB_STATUS_CHANGE", "message": "x"})
    fake.get(LIST, json=page([dict(job, status="in_progress")]))  # the relist
    result = run(company)
    assert result.outcome == Outcome.CONFLICT
    assert [json.loads(c.request.body)["event"] for c in posts(fake)] == ["started", "started"]
    assert ExportJob.objects.get(pleo_job_id=job["id"]).claim == ExportJob.Claim.ELSEWHERE
    conflict = AuditEntry.objects.get(company=company, step="start_conflict")
    assert "not claimed as ours" in conflict.message and "Adopt job" in conflict.message


def test_in_progress_job_with_our_starting_claim_is_resumed_without_started(company, fake):
    job = job_json(company, status="in_progress")
    make_job(
        company, pleo_job_id=job["id"], claim=ExportJob.Claim.STARTING, claim_run_id=uuid.uuid4()
    )
    fake.get(LIST, json=page([job]))
    fake.post(EVENTS, status=202)
    result = run(company, trigger=Trigger.RECOVERY)
    assert result.outcome == Outcome.COMPLETED
    assert [json.loads(c.request.body)["event"] for c in posts(fake)] == ["completed"]
    assert ExportJob.objects.get(pleo_job_id=job["id"]).claim == ExportJob.Claim.OURS
    assert steps(company) == ["started", "validated", "items_read", "completed"]
    # A second run (the job is finished in Pleo) changes nothing and writes nothing.
    fake.replace("GET", LIST, json=page([]))
    run(company)
    assert len(steps(company)) == 4


def test_in_progress_job_not_ours_blocks_and_is_recorded_once(company, fake):
    running = job_json(company, status="in_progress", created_minutes_ago=50)
    pending = job_json(company, created_minutes_ago=10)
    fake.get(LIST, json=page([running, pending]))
    result = run(company, recover=True)
    assert result.outcome == Outcome.OWNED_ELSEWHERE
    assert posts(fake) == []
    assert any("Adopt job" in hint for hint in result.hints)
    assert steps(company) == ["owned_elsewhere"]
    assert run(company).outcome == Outcome.OWNED_ELSEWHERE
    assert steps(company) == ["owned_elsewhere"]


def test_expired_pending_job_is_recorded_once_and_never_started(company, fake):
    expired = job_json(company, created_minutes_ago=120)
    fake.get(LIST, json=page([expired]))
    fake.get(f"{LIST}/{expired['id']}", json={"data": expired})
    assert run(company).outcome == Outcome.EXPIRED_SKIPPED
    assert run(company).outcome == Outcome.EXPIRED_SKIPPED
    assert steps(company) == ["expired"]
    assert posts(fake) == []
    assert ExportJob.objects.get(pleo_job_id=expired["id"]).expired_detected_at is not None


def test_expired_oldest_is_skipped_and_next_oldest_started(company, fake):
    expired = job_json(company, created_minutes_ago=120)
    fresh = job_json(company, created_minutes_ago=5)
    fake.get(LIST, json=page([expired, fresh]))
    fake.get(f"{LIST}/{expired['id']}", json={"data": expired})
    fake.get(f"{LIST}/{fresh['id']}", json={"data": fresh})
    fake.post(EVENTS, status=202)
    result = run(company)
    assert result.outcome == Outcome.COMPLETED
    assert str(result.job_id) == fresh["id"]


def test_expiry_counts_from_last_updated_at(company, fake):
    job = job_json(
        company,
        created_minutes_ago=120,
        lastUpdatedAt=iso(clock.now() - timedelta(minutes=5)),
    )
    fake.get(LIST, json=page([job]))
    fake.get(f"{LIST}/{job['id']}", json={"data": job})
    fake.post(EVENTS, status=202)
    assert run(company).outcome == Outcome.COMPLETED


def test_product_clock_decides_expiry(company, fake):
    job = job_json(company, created_minutes_ago=30)
    fake.get(LIST, json=page([job]))
    fake.get(f"{LIST}/{job['id']}", json={"data": job})
    clock.advance(3600)
    assert run(company).outcome == Outcome.EXPIRED_SKIPPED


def test_404_and_terminal_jobs_are_skipped_for_the_next_oldest(company, fake):
    gone = job_json(company, created_minutes_ago=40)
    done = job_json(company, created_minutes_ago=30)
    fresh = job_json(company, created_minutes_ago=20)
    fake.get(LIST, json=page([gone, done, fresh]))
    fake.get(
        f"{LIST}/{gone['id']}",
        status=404,
        json={"type": "EXPORT_NOT_FOUND", "message": "Export job not found."},
    )
    fake.get(f"{LIST}/{done['id']}", json={"data": dict(done, status="completed")})
    fake.get(f"{LIST}/{fresh['id']}", json={"data": fresh})
    fake.post(EVENTS, status=202)
    result = run(company)
    assert str(result.job_id) == fresh["id"]
    assert steps(company)[:2] == ["not_found", "finished_elsewhere"]


def test_401_marks_api_key_invalid_and_stops_calls(company, fake):
    fake.get(LIST, status=401, json={"type": "UNAUTHORIZED", "message": "Bad key"})
    result = run(company)
    assert result.outcome == Outcome.FAILED
    assert "refused" in result.error
    credential = Credential.objects.get(pk=company.credential_id)
    assert credential.status == Credential.Status.INVALID
    calls = len(fake.calls)
    second = run(company)
    assert second.outcome == Outcome.FAILED
    assert len(fake.calls) == calls  # no further call with an invalid credential
    assert steps(company).count("error") == 2  # the 401, then "credential is invalid" (once)
    run(company)
    assert steps(company).count("error") == 2


def test_unreachable_pleo_fails_with_reason(company, fake, settings):
    settings.PLEO_MAX_ATTEMPTS = 1
    fake.get(LIST, status=503)
    result = run(company)
    assert result.outcome == Outcome.FAILED
    assert "503" in result.error


def test_busy_company_sets_recheck_and_returns_busy(company, fake):
    lease = leases.lease_acquire(company_id=company.pk, trigger=Trigger.SCHEDULE)
    result = run(company, trigger=Trigger.WEBHOOK)
    assert result.outcome == Outcome.BUSY
    assert len(fake.calls) == 0
    company.refresh_from_db()
    assert company.recheck_requested
    # The holder lists again instead of releasing.
    nothing = leases.CheckRecord("nothing_pending")
    assert leases.lease_release_or_recheck(lease=lease, check=nothing) is True
    assert leases.lease_release_or_recheck(lease=lease, check=nothing) is False


def test_trigger_during_a_run_makes_the_holder_list_again(company, fake):
    job = job_json(company)
    calls = {"n": 0}

    def listing(request):
        calls["n"] += 1
        if calls["n"] == 1:
            # A webhook arrives while this run holds the lease.
            assert run(company, trigger=Trigger.WEBHOOK).outcome == Outcome.BUSY
            return 200, {}, json.dumps(page([]))
        return 200, {}, json.dumps(page([job]))

    fake.add_callback("GET", LIST, callback=listing)
    fake.get(f"{LIST}/{job['id']}", json={"data": job})
    fake.post(EVENTS, status=202)
    result = run(company)
    assert result.outcome == Outcome.COMPLETED
    # Empty list, the list the recheck asked for, and the list after the job finished.
    assert calls["n"] == 3


def test_stalled_holder_loses_its_lease_and_its_writes_are_refused(company, settings):
    settings.COMPANY_LEASE_SECONDS = 5
    stalled = leases.lease_acquire(company_id=company.pk, trigger=Trigger.SCHEDULE)
    clock.advance(6)
    taker = leases.lease_acquire(company_id=company.pk, trigger=Trigger.SCHEDULE)
    assert taker is not None and taker.token != stalled.token
    with pytest.raises(leases.LeaseLost):
        with stalled.guard():
            pass
    with pytest.raises(leases.LeaseLost):
        stalled.renew()
    with pytest.raises(leases.LeaseLost):
        leases.lease_release_or_recheck(lease=stalled, check=leases.CheckRecord("started"))
    company.refresh_from_db()
    assert company.lease_token == taker.token


def test_unusable_credential_fails_without_http(company, fake):
    Credential.objects.filter(pk=company.credential_id).update(status=Credential.Status.INVALID)
    result = run(company)
    assert result.outcome == Outcome.FAILED
    assert "invalid" in result.error
    assert len(fake.calls) == 0


def test_recover_rereads_our_unfinished_claims(company, fake):
    job = job_json(company, status="completed")
    make_job(company, pleo_job_id=job["id"], status="in_progress", claim=ExportJob.Claim.OURS)
    fake.get(f"{LIST}/{job['id']}", json={"data": job})
    fake.get(LIST, json=page([]))
    result = run(company, recover=True)
    assert result.outcome == Outcome.NOTHING_PENDING
    assert ExportJob.objects.get(pleo_job_id=job["id"]).status == "completed"
    assert steps(company) == ["finished_elsewhere"]


# --- command line ---------------------------------------------------------------------------


def test_check_exports_json_and_exit_codes(company, fake, capsys):
    fake.get(LIST, json=page([]))
    call_command("check_exports", "--json", "--company", str(company.pleo_company_id))
    line = json.loads(capsys.readouterr().out.strip())
    assert line["outcome"] == "nothing_pending"
    assert set(line) >= {"company", "pleo_company_id", "outcome", "job_id", "run_id", "error"}

    with pytest.raises(CommandError) as unknown:
        call_command("check_exports", "--company", str(uuid.uuid4()))
    assert unknown.value.returncode == 2

    fake.replace("GET", LIST, status=401, json={"type": "UNAUTHORIZED", "message": "no"})
    with pytest.raises(CommandError) as failed:
        call_command("check_exports")
    assert failed.value.returncode == 1


def test_add_company_creates_then_updates_and_reactivates(capsys):
    pleo_id = str(uuid.uuid4())
    call_command(
        "add_company",
        "--name",
        "Acme",
        "--pleo-company-id",
        pleo_id,
        "--api-key",
        "pk_test_add_company_1",
        "--json",
    )
    created = json.loads(capsys.readouterr().out)
    assert created["pleo_company_id"] == pleo_id
    assert created["webhook_path"].startswith("/webhooks/pleo/")
    assert created["webhook_url"].endswith(created["webhook_path"])
    Company.objects.filter(pk=created["id"]).update(active=False)
    call_command(
        "add_company",
        "--name",
        "Acme AS",
        "--pleo-company-id",
        pleo_id,
        "--api-key",
        "pk_test_add_company_2",
        "--webhook-secret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    out = capsys.readouterr().out
    assert "Updated company Acme AS" in out
    company = Company.objects.get(pk=created["id"])
    assert company.active and company.name == "Acme AS"
    assert company.credential.api_key == "pk_test_add_company_2"
    assert company.credential.webhook_endpoint.secret_entries()[0]["secret"].startswith("whsec_")
    assert Company.objects.count() == 1


def test_recover_drops_a_claim_on_a_job_pleo_no_longer_has_once(company, fake):
    job_id = uuid.uuid4()
    make_job(company, pleo_job_id=job_id, status="in_progress", claim=ExportJob.Claim.OURS)
    fake.get(
        f"{LIST}/{job_id}",
        status=404,
        json={"type": "EXPORT_NOT_FOUND", "message": "Export job not found."},
    )
    fake.get(LIST, json=page([]))
    run(company, recover=True)
    run(company, recover=True)
    assert steps(company) == ["not_found"]
    assert ExportJob.objects.get(pleo_job_id=job_id).claim == ExportJob.Claim.NONE
