"""Fault injection over real HTTP: each kind, counts, body matching, path patterns."""

import re
import time

import pytest
import requests


def new_job(sb, n=1) -> str:
    return sb.state.create_job(sb.company.id, n)["id"]


def log_for(sb, path):
    return sb.state.requests(path=path)


def test_status_fault_for_the_next_n_requests(sb):
    job_id = new_job(sb)
    fault = sb.state.add_fault("status", "GET", "/v3/export-jobs/{jobId}", count=2, status=502)
    for _ in range(2):
        response = sb.api.get(f"/v3/export-jobs/{job_id}")
        assert response.status_code == 502
        assert response.json()["type"] and response.json()["message"]
    assert sb.api.get(f"/v3/export-jobs/{job_id}").status_code == 200
    assert sb.api.get("/v3/export-jobs").status_code == 200  # other path never matched
    assert sb.state.faults.list() == []
    assert fault.hits == 2
    logged = [(e["status"], e["fault"]) for e in log_for(sb, f"/v3/export-jobs/{job_id}")]
    assert logged == [(502, "status"), (502, "status"), (200, None)]


def test_status_fault_with_custom_body_and_apply(sb):
    job_id = new_job(sb)
    sb.state.add_fault(
        "status",
        "POST",
        "/v3/export-job-events",
        status=500,
        body="upstream exploded",
        apply=True,
    )
    response = sb.api.event(job_id, "started")
    assert response.status_code == 500 and response.text == "upstream exploded"
    assert sb.api.job(job_id)["status"] == "in_progress"  # applied despite the 500


def test_rate_limit_fault(sb):
    sb.state.add_fault("rate_limit", "GET", "/v3/export-jobs", retry_after=7)
    response = sb.api.get("/v3/export-jobs")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json()["type"] == "TOO_MANY_REQUESTS"
    assert sb.api.get("/v3/export-jobs").status_code == 200


def test_latency_fault(sb):
    sb.state.add_fault("latency", "GET", "/v3/export-jobs", seconds=0.3)
    started = time.monotonic()
    assert sb.api.get("/v3/export-jobs").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    sb.api.get("/v3/export-jobs")
    assert time.monotonic() - started < 0.2


@pytest.mark.parametrize("apply", [False, True])
def test_stall_fault_times_the_client_out(sb, apply):
    job_id = new_job(sb)
    sb.state.add_fault("stall", "POST", "/v3/export-job-events", seconds=0.5, apply=apply)
    with pytest.raises(requests.exceptions.ReadTimeout):
        sb.api.post(
            "/v3/export-job-events", json={"jobId": job_id, "event": "started"}, timeout=0.2
        )
    entry = sb.state.request_log.wait_for(
        lambda log: any(e.get("complete") and e["fault"] == "stall" for e in log), timeout=3
    )[-1]
    assert entry["outcome"] == ("late_answer" if apply else "dropped")
    assert entry["endedMonotonic"] - entry["startedMonotonic"] >= 0.5
    assert sb.api.job(job_id)["status"] == ("in_progress" if apply else "pending")


def test_stall_default_seconds_come_from_the_switch(sb):
    sb.state.set_switches(stall_seconds=0.4)
    sb.state.add_fault("stall", "GET", "/v3/export-jobs")
    with pytest.raises(requests.exceptions.ReadTimeout):
        sb.api.get("/v3/export-jobs", timeout=0.2)
    started = time.monotonic()
    assert sb.api.get("/v3/export-jobs", timeout=2).status_code == 200
    assert time.monotonic() - started < 0.3


def started_under_fault(sb, fault: str) -> str:
    """A new job's ``started`` sent while ``fault`` breaks the connection; the job's id."""
    job_id = new_job(sb)
    sb.state.add_fault(fault, "POST", "/v3/export-job-events")
    with pytest.raises(requests.exceptions.ConnectionError):
        sb.api.event(job_id, "started")
    return job_id


def test_reset_fault_does_not_apply(sb):
    job_id = started_under_fault(sb, "reset")
    assert sb.api.job(job_id)["status"] == "pending"
    assert log_for(sb, "/v3/export-job-events")[0]["outcome"] == "reset"
    # The next request (new connection) is fine.
    assert sb.api.event(job_id, "started").status_code == 202


def test_apply_then_drop_is_the_ambiguous_outcome(sb):
    job_id = started_under_fault(sb, "apply_then_drop")
    assert sb.api.job(job_id)["status"] == "in_progress"
    # A retry of the same `started` now meets the 422 of a job already started.
    assert sb.api.event(job_id, "started").status_code == 422
    entry = log_for(sb, "/v3/export-job-events")[0]
    assert (entry["status"], entry["outcome"], entry["fault"]) == (
        None,
        "dropped",
        "apply_then_drop",
    )


def test_body_match_and_job_id(sb):
    first, second = new_job(sb), new_job(sb)
    sb.state.add_fault(
        "status",
        "POST",
        "/v3/export-job-events",
        body_match={"event": "completed"},
        count=None,
        status=503,
    )
    sb.state.add_fault("status", "GET", "/v3/export-jobs/{jobId}", job_id=second, status=500)
    assert sb.api.event(first, "started").status_code == 202
    assert sb.api.event(first, "completed").status_code == 503
    assert sb.api.event(first, "completed").status_code == 503
    assert sb.api.event(first, "failed").status_code == 202
    assert sb.api.get(f"/v3/export-jobs/{first}").status_code == 200
    assert sb.api.get(f"/v3/export-jobs/{second}").status_code == 500


def test_body_match_on_list_bodies(sb):
    job_id = new_job(sb, 2)
    sb.api.event(job_id, "started")
    entries = [i["accountingEntryId"] for i in sb.state.get_job(job_id)["items"]]
    sb.state.add_fault("status", "PUT", None, body_match={"accountingEntryId": entries[1]})
    one = [{"accountingEntryId": entries[0], "status": "successful"}]
    two = [{"accountingEntryId": entries[1], "status": "successful"}]
    assert sb.api.put(f"/v3/export-jobs/{job_id}/items", json=one).status_code == 200
    assert sb.api.put(f"/v3/export-jobs/{job_id}/items", json=two).status_code == 503


def test_regex_path_and_any_method(sb):
    job_id = new_job(sb)
    sb.state.add_fault("status", None, re.compile(r"/v3/export-jobs/[^/]+/items"), status=504)
    assert sb.api.get(f"/v3/export-jobs/{job_id}/items").status_code == 504
    assert sb.api.get(f"/v3/export-jobs/{job_id}").status_code == 200
    sb.state.add_fault("status", "GET", path_regex=r"/v3/export-(jobs|items)", status=503)
    assert sb.api.get("/v3/export-items", params={"job_id": job_id}).status_code == 503


def test_faults_can_be_removed_and_cleared(sb):
    fault = sb.state.add_fault("status", "GET", "/v3/export-jobs", count=None)
    assert sb.api.get("/v3/export-jobs").status_code == 503
    assert sb.state.remove_fault(fault.id) is True
    assert sb.api.get("/v3/export-jobs").status_code == 200
    sb.state.add_fault("status", "GET", "/v3/export-jobs", count=None)
    sb.state.clear_faults()
    assert sb.api.get("/v3/export-jobs").status_code == 200


def test_another_integration_starts_the_job_first(sb):
    job_id = new_job(sb)
    untouched = new_job(sb)
    sb.state.add_fault("other_integration_starts", job_id=job_id)
    response = sb.api.event(job_id, "started")
    assert response.status_code == 422
    assert response.json()["type"] == "INVALID_EXPORT_JOB_STATUS_CHANGE"
    view = sb.state.get_job(job_id)
    assert view["job"]["status"] == "in_progress"
    moves = [(e["event"], e["identity"], e["accepted"]) for e in view["events"][1:]]
    assert moves == [("started", "other-integration", True), ("started", sb.key.identity, False)]
    # Only that job, only once.
    assert sb.api.event(untouched, "started").status_code == 202


def test_start_as_other_integration_directly(sb):
    job_id = new_job(sb)
    assert sb.state.start_as_other_integration(job_id) is True
    assert sb.state.start_as_other_integration(job_id) is False
    assert sb.api.event(job_id, "started").status_code == 422


def test_invalid_faults_are_refused(sb):
    with pytest.raises(ValueError):
        sb.state.add_fault("explode", "GET", "/v3/export-jobs")
    with pytest.raises(ValueError):
        sb.state.add_fault("status", "GET", "/v3/export-jobs", count=0)
    with pytest.raises(ValueError):
        sb.state.add_fault("status", "GET", "/v3/export-jobs", status=42)
