"""POST /v3/export-job-events: the whole transition table of section 4.7, and its side effects."""

import uuid

import pytest

from tests.openapi_schemas import enum_values, validate_request_body, validate_response

STATUSES = enum_values("ExportJobStatus")
EVENTS = enum_values("ExportJobEventType")
# The table of section 4.7 (with the brief's reading: pending → failed is 422 by default).
ALLOWED = {
    ("pending", "started"): "in_progress",
    ("in_progress", "failed"): "failed",
    ("in_progress", "completed"): "completed",
    ("in_progress", "completed_with_errors"): "completed_with_errors",
}
INVALID = {"type": "INVALID_EXPORT_JOB_STATUS_CHANGE", "message": "Export Job status change failed"}


def job_in(sb, status: str, n_items: int = 2) -> str:
    """A job brought to ``status`` through the API only."""
    job_id = sb.state.create_job(sb.company.id, n_items)["id"]
    if status == "pending":
        return job_id
    assert sb.api.event(job_id, "started").status_code == 202
    if status != "in_progress":
        extra = {"failureReasonType": "validation_failure"} if status == "failed" else {}
        assert sb.api.event(job_id, status, **extra).status_code == 202
    assert sb.api.job(job_id)["status"] == status
    return job_id


def test_enums_match_the_spec():
    assert STATUSES == ["pending", "in_progress", "failed", "completed", "completed_with_errors"]
    assert EVENTS == ["started", "failed", "completed", "completed_with_errors"]


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("event", EVENTS)
def test_transition_table(sb, status, event):
    job_id = job_in(sb, status)
    before = sb.api.job(job_id)
    body = {"jobId": job_id, "event": event}
    if event == "failed":
        body |= {
            "failureReason": "ERP unreachable",
            "failureReasonType": "accounting_system_unreachable",
        }
    validate_request_body(body, "POST", "/v3/export-job-events")
    response = sb.api.post("/v3/export-job-events", json=body)
    after = sb.api.job(job_id)
    target = ALLOWED.get((status, event))
    if target is None:
        assert response.status_code == 422, response.text
        assert response.json() == INVALID
        validate_response(response.json(), "POST", "/v3/export-job-events", 422)
        assert after == before
        assert sb.state.get_job(job_id)["events"][-1]["accepted"] is False
    else:
        assert response.status_code == 202, response.text
        assert response.content == b""
        assert response.headers["Content-Length"] == "0"
        assert after["status"] == target
        assert after["lastUpdatedAt"] is not None
        last = sb.state.get_job(job_id)["events"][-1]
        assert (last["event"], last["accepted"], last["identity"]) == (event, True, sb.key.identity)
        assert (last["statusBefore"], last["statusAfter"]) == (status, target)


def test_started_sets_started_at_and_final_sets_completed_at(sb):
    job_id = job_in(sb, "pending")
    assert sb.api.job(job_id)["lastUpdatedAt"] is None
    sb.api.event(job_id, "started")
    started = sb.api.job(job_id)
    assert started["startedAt"] is not None and started["completedAt"] is None
    assert started["lastUpdatedAt"] == started["startedAt"]
    sb.state.advance_clock(120)
    sb.api.event(job_id, "completed_with_errors")
    done = sb.api.job(job_id)
    assert done["startedAt"] == started["startedAt"]
    assert done["completedAt"] is not None and done["completedAt"] > done["startedAt"]
    assert done["failureReason"] is None and done["failureReasonType"] is None


def test_failed_sets_reason_and_abandons_unfinished_items(sb):
    job_id = job_in(sb, "in_progress", n_items=3)
    items = sb.api.get(f"/v3/export-jobs/{job_id}/items").json()["data"]
    done = {"accountingEntryId": items[0]["accountingEntryId"], "status": "successful"}
    assert sb.api.put(f"/v3/export-jobs/{job_id}/items", json=[done]).status_code == 200
    response = sb.api.event(
        job_id, "failed", failureReason="ERP locked", failureReasonType="invalid_configuration"
    )
    assert response.status_code == 202
    job = sb.api.job(job_id)
    assert (job["status"], job["failureReason"], job["failureReasonType"]) == (
        "failed",
        "ERP locked",
        "invalid_configuration",
    )
    assert job["completedAt"] is not None
    statuses = [i["status"] for i in sb.api.get(f"/v3/export-jobs/{job_id}/items").json()["data"]]
    assert statuses == ["successful", "abandoned", "abandoned"]


def test_failed_on_pending_switch(sb):
    job_id = job_in(sb, "pending")
    assert sb.api.event(job_id, "failed").status_code == 422
    sb.state.set_switches(failed_on_pending="202")
    assert (
        sb.api.event(job_id, "failed", failureReasonType="missing_configuration").status_code == 202
    )
    assert sb.api.job(job_id)["status"] == "failed"


def test_started_on_in_progress_switch(sb):
    job_id = job_in(sb, "in_progress")
    first = sb.api.job(job_id)
    assert sb.api.event(job_id, "started").json() == INVALID
    sb.state.set_switches(started_on_in_progress="202")
    sb.state.advance_clock(60)
    response = sb.api.event(job_id, "started")
    assert response.status_code == 202
    again = sb.api.job(job_id)
    assert again["status"] == "in_progress"
    assert again["startedAt"] == first["startedAt"]
    assert again["lastUpdatedAt"] > first["lastUpdatedAt"]
    # Still 422 on finished jobs.
    assert sb.api.event(job_in(sb, "completed"), "started").status_code == 422


def test_unknown_job_is_404(sb):
    response = sb.api.event(str(uuid.uuid4()), "started")
    assert response.status_code == 404
    assert response.json()["type"] == "EXPORT_NOT_FOUND"


def test_job_of_another_company_is_404_and_untouched(sb):
    other = sb.state.add_company("Other")
    job = sb.state.create_job(other.id, 1)
    assert sb.api.event(job["id"], "started").status_code == 404
    assert sb.state.get_job(job["id"])["job"]["status"] == "pending"


@pytest.mark.parametrize(
    "body",
    [
        {"event": "started"},
        {"jobId": "not-a-uuid", "event": "started"},
        {"jobId": "JOB", "event": "begun"},
        {"jobId": "JOB"},
        {
            "jobId": "JOB",
            "event": "failed",
            "failureReasonType": "accounting_system_validation_failure",
        },
        {"jobId": "JOB", "event": "failed", "failureReason": 42},
        ["JOB", "started"],
        "started",
    ],
)
def test_invalid_event_bodies_are_400(sb, body):
    job_id = job_in(sb, "pending")

    def fill(value):
        if isinstance(value, dict):
            return {k: (job_id if v == "JOB" else v) for k, v in value.items()}
        if isinstance(value, list):
            return [job_id if v == "JOB" else v for v in value]
        return value

    response = sb.api.post("/v3/export-job-events", json=fill(body))
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "BAD_REQUEST"
    assert sb.api.job(job_id)["status"] == "pending"
