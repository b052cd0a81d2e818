"""Expiry on the sandbox clock: pending and in_progress jobs, abandoned items, the lag switch."""

from datetime import timedelta

from pleo_sandbox.clock import parse_iso
from tests.openapi_schemas import validate


def job_and_entries(sb, n=3, **kw):
    job = sb.state.create_job(sb.company.id, n, **kw)
    return job["id"], [i["accountingEntryId"] for i in sb.state.get_job(job["id"])["items"]]


def statuses(sb, job_id):
    return [i["status"] for i in sb.api.get(f"/v3/export-jobs/{job_id}/items").json()["data"]]


def assert_expired(sb, job_id):
    job = sb.api.job(job_id)
    validate(job, "ExportJobV3", no_extra_fields=True)
    assert job["status"] == "failed"
    assert job["failureReasonType"] == "job_expired"
    assert job["expiredAt"] is not None and job["failureReason"]
    return job


def test_pending_job_expires_one_hour_after_creation(sb):
    job_id, _ = job_and_entries(sb)
    created = parse_iso(sb.api.job(job_id)["createdAt"])
    sb.state.advance_clock(3598)
    assert sb.api.job(job_id)["status"] == "pending"
    sb.state.advance_clock(3)
    job = assert_expired(sb, job_id)
    assert parse_iso(job["expiredAt"]) - created in (
        timedelta(seconds=3600),
        timedelta(seconds=3601),
    )
    assert job["lastUpdatedAt"] is None
    assert statuses(sb, job_id) == ["abandoned"] * 3
    last = sb.state.get_job(job_id)["events"][-1]
    assert (last["event"], last["identity"]) == ("expired", "pleo-expiry-sweeper")


def test_in_progress_job_expires_after_last_action_and_keeps_final_items(sb):
    job_id, entries = job_and_entries(sb)
    assert sb.api.event(job_id, "started").status_code == 202
    body = [
        {"accountingEntryId": entries[0], "status": "successful"},
        {"accountingEntryId": entries[1], "status": "failed", "failureReasonType": "tag_unknown"},
    ]
    sb.state.advance_clock(3000)
    assert sb.api.put(f"/v3/export-jobs/{job_id}/items", json=body).status_code == 200
    sb.state.advance_clock(3000)  # 6000 s after start, 3000 s after the item update
    assert sb.api.job(job_id)["status"] == "in_progress"
    sb.state.advance_clock(601)
    assert_expired(sb, job_id)
    assert statuses(sb, job_id) == ["successful", "failed", "abandoned"]


def test_events_refresh_last_updated_at(sb):
    job_id, _ = job_and_entries(sb)
    assert sb.api.job(job_id)["lastUpdatedAt"] is None
    sb.state.advance_clock(3500)
    assert sb.api.event(job_id, "started").status_code == 202
    started = sb.api.job(job_id)
    assert started["lastUpdatedAt"] == started["startedAt"]
    sb.state.advance_clock(3500)  # 7000 s after creation, 3500 s after `started`
    assert sb.api.job(job_id)["status"] == "in_progress"
    # A rejected event is not an action.
    assert sb.api.event(job_id, "started").status_code == 422
    sb.state.advance_clock(101)
    assert_expired(sb, job_id)


def test_reads_do_not_refresh_expiry(sb):
    job_id, _ = job_and_entries(sb)
    sb.api.event(job_id, "started")
    for _ in range(3):
        sb.state.advance_clock(1000)
        sb.api.job(job_id)
        sb.api.get(f"/v3/export-jobs/{job_id}/items")
        sb.api.get("/v3/export-items", params={"job_id": job_id})
    sb.state.advance_clock(601)
    assert_expired(sb, job_id)


def test_expiry_lag_switch(sb):
    sb.state.set_switches(expiry_lag_seconds=600)
    job_id, _ = job_and_entries(sb)
    sb.state.advance_clock(3700)
    assert sb.api.job(job_id)["status"] == "pending"  # overdue, but the sweeper lags
    # The integration can still act on an overdue job while the sweeper lags.
    assert sb.api.event(job_id, "started").status_code == 202
    job_id2, _ = job_and_entries(sb, created_at=sb.state.now() - timedelta(seconds=3700))
    sb.state.advance_clock(501)
    job = assert_expired(sb, job_id2)
    assert parse_iso(job["expiredAt"]) - parse_iso(job["createdAt"]) >= timedelta(seconds=4199)
    assert sb.api.job(job_id)["status"] == "in_progress"


def test_custom_expires_in_and_backdated_creation(sb):
    short, _ = job_and_entries(sb, expires_in=60)
    assert sb.api.job(short)["expiresIn"] == 60
    old, _ = job_and_entries(sb, created_at=sb.state.now() - timedelta(hours=2))
    assert_expired(sb, old)
    sb.state.advance_clock(61)
    assert_expired(sb, short)


def test_default_expires_in_switch(sb):
    sb.state.set_switches(default_expires_in=900)
    job_id, _ = job_and_entries(sb)
    assert sb.api.job(job_id)["expiresIn"] == 900
    sb.state.advance_clock(901)
    assert_expired(sb, job_id)


def test_expired_job_rejects_everything(sb):
    job_id, entries = job_and_entries(sb)
    sb.api.event(job_id, "started")
    sb.state.advance_clock(3601)
    assert sb.api.event(job_id, "completed").status_code == 422
    update = [{"accountingEntryId": entries[0], "status": "successful"}]
    assert sb.api.put(f"/v3/export-jobs/{job_id}/items", json=update).status_code == 422
    assert sb.api.get("/v3/export-items", params={"job_id": job_id}).status_code == 422
    listed = sb.api.get("/v3/export-jobs", params={"statuses": "failed"}).json()["data"]
    assert [j["id"] for j in listed] == [job_id]


def test_expiry_applies_on_clock_advance_without_requests(sb):
    job_id, _ = job_and_entries(sb)
    sb.state.advance_clock(3601)
    assert sb.state.get_job(job_id)["job"]["status"] == "failed"
    assert sb.state.list_jobs()[0]["failureReasonType"] == "job_expired"
