"""The schema helpers themselves (tests/openapi_schemas.py) must catch what they claim to."""

import pytest
from jsonschema import ValidationError

from tests.openapi_schemas import (
    BOGUS_PATTERNS,
    enum_values,
    errors,
    load_spec,
    response_errors,
    schema,
    validate,
    validate_request_body,
    validate_response,
)
from tests.sandbox.helpers import check_logged_responses

JOB = {
    "id": "0b7f2d55-5a43-4d4b-8d0c-6a2f0a3e9f10",
    "companyId": "4f1b8a26-2f7e-4a0a-9b8f-0c7d7c9c1e21",
    "status": "pending",
    "createdAt": "2025-05-23T15:21:32Z",
    "expiresIn": 3600,
    "isInteractive": True,
    "numberOfItems": 1,
    "vendorBasedBookkeeping": False,
}


def test_bogus_patterns_are_in_the_published_spec_and_stripped():
    raw = load_spec("export-api-v3")["components"]["schemas"]["ExportJobV3"]["properties"]
    assert raw["createdAt"]["pattern"] in BOGUS_PATTERNS
    assert "pattern" not in schema("ExportJobV3")["properties"]["createdAt"]
    # The real cursor pattern on query parameters is a regex and is left alone.
    params = load_spec("export-api-v3")["paths"]["/v3/export-jobs"]["get"]["parameters"]
    assert {"^[A-Z2-7=~]+$"} == {
        p["schema"]["pattern"] for p in params if p["name"] in ("after", "before")
    }


def test_valid_job_passes_and_broken_ones_fail():
    validate({"data": JOB}, "DataResponseExportJobV3")
    missing = {k: v for k, v in JOB.items() if k != "expiresIn"}
    with pytest.raises(ValidationError, match="expiresIn"):
        validate({"data": missing}, "DataResponseExportJobV3")
    assert errors({**JOB, "id": "not-a-uuid"}, "ExportJobV3")
    assert errors({**JOB, "createdAt": "23/05/2025"}, "ExportJobV3")
    assert errors({**JOB, "extra": 1}, "ExportJobV3", no_extra_fields=True)
    assert not errors({**JOB, "extra": 1}, "ExportJobV3")


def test_nullable_fixups_only_where_declared():
    item = {
        "accountingEntryId": JOB["id"],
        "exportJobId": JOB["id"],
        "status": "pending",
        "failureReasonType": None,
    }
    assert not errors(item, "ExportJobItemV3")
    assert errors(item, "ExportJobItemV3", pleo_nullable_fixups=False)
    assert errors({**item, "status": None}, "ExportJobItemV3")


def test_request_and_response_helpers():
    good = [{"accountingEntryId": JOB["id"], "status": "successful"}]
    validate_request_body(good, "PUT", "/v3/export-jobs/{jobId}/items")
    with pytest.raises(ValidationError):
        validate_request_body([{"status": "successful"}], "PUT", "/v3/export-jobs/{jobId}/items")
    with pytest.raises(ValidationError):
        validate_request_body(
            {"jobId": JOB["id"], "event": "begun"}, "POST", "/v3/export-job-events"
        )
    validate_response(None, "POST", "/v3/export-job-events", 202)
    with pytest.raises(ValidationError):
        validate_response({"unexpected": 1}, "POST", "/v3/export-job-events", 202)
    validate_response({"type": "EXPORT_NOT_FOUND"}, "GET", "/v3/export-jobs/{jobId}", 404)
    with pytest.raises(KeyError):
        validate_response({}, "GET", "/v3/export-jobs/{jobId}", 418)


PATH_JOB = "/v3/export-jobs/{jobId}"


def test_response_errors_lists_without_raising():
    page = {"data": [JOB], "pagination": {"hasNextPage": False, "hasPreviousPage": False}}
    assert response_errors(page, "GET", "/v3/export-jobs", 200) == [
        "/pagination: 'currentRequestPagination' is a required property"
    ]
    page["pagination"]["currentRequestPagination"] = {"parameters": {}}
    assert response_errors(page, "GET", "/v3/export-jobs", 200) == []
    # The spec types a job's status as a plain string (its enum is a separate schema).
    assert response_errors({"data": {**JOB, "status": "expired"}}, "GET", PATH_JOB, 200) == []
    [problem] = response_errors({"data": {**JOB, "expiresIn": "1h"}}, "GET", PATH_JOB, 200)
    assert problem == "/data/expiresIn: '1h' is not of type 'integer'"
    assert response_errors(None, "POST", "/v3/export-job-events", 202) == []
    assert response_errors({"x": 1}, "POST", "/v3/export-job-events", 202)


def test_enum_values():
    assert enum_values("ExportJobEventType") == [
        "started",
        "failed",
        "completed",
        "completed_with_errors",
    ]
    assert "abandoned" in enum_values("ExportJobItemStatus")


class FakeLog:
    def __init__(self, entries):
        self.entries = entries

    def requests(self):
        return self.entries


def entry(path, status, body, method="GET", fault=None):
    return {
        "method": method,
        "path": path,
        "status": status,
        "responseBody": body,
        "fault": fault,
        "complete": True,
    }


def test_logged_response_checker_catches_bad_bodies():
    good_job = {"data": JOB}
    job_path = f"/v3/export-jobs/{JOB['id']}"
    assert check_logged_responses(FakeLog([entry(job_path, 200, good_job)])) == 1
    bad = [
        entry(job_path, 200, {"data": {**JOB, "surprise": 1}}),
        entry(job_path, 404, {"type": "EXPORT_NOT_FOUND", "extra": True}),
        entry("/v3/export-jobs", 401, {"message": "no type"}),
        entry(f"/v1/subscriptions/{JOB['id']}", 404, None),
        entry("/v3/export-job-events", 202, {"unexpected": "body"}, method="POST"),
    ]
    for e in bad:
        with pytest.raises(AssertionError):
            check_logged_responses(FakeLog([e]))
    # Injected faults and unknown paths are skipped.
    skipped = [entry(job_path, 503, "oops", fault="status"), entry("/files/x", 200, None)]
    assert check_logged_responses(FakeLog(skipped)) == 0
