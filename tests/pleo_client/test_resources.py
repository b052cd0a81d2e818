"""exports.pleo.resources: parsing Pleo's answers (malformed ones name the field and never quote
the body) and checking what we send, against Pleo's OpenAPI schemas."""

from __future__ import annotations

from datetime import datetime

import jsonschema
import pytest

from exports.pleo import (
    ExportJob,
    ItemUpdate,
    PleoResponseError,
)
from tests import client_fakes as fakes
from tests.client_fakes import (
    ITEMS,
    JOB,
    JOBS,
    PUT_ITEMS_PATH,
    SUBSCRIPTION,
    check_request,
    check_response,
    put_items,
)

# --- OpenAPI schemas ------------------------------------------------------------------------------
# Request bodies are checked against the operation's requestBody schema with no_extra_fields, so
# a misspelled or invented field name (say ``exportJobId``) fails as well as a wrong value.


def test_request_checks_reject_what_pleo_would_reject():
    check_request({"jobId": fakes.JOB_ID, "event": "started"}, "POST", "/v3/export-job-events")
    bad_requests = [
        ({"jobId": fakes.JOB_ID, "event": "start"}, "POST", "/v3/export-job-events"),
        ({"exportJobId": fakes.JOB_ID, "event": "started"}, "POST", "/v3/export-job-events"),
        ([{"accountingEntryId": fakes.entry_id(1), "status": "ok"}], "PUT", PUT_ITEMS_PATH),
        ([{"accountingEntryId": "x", "status": "failed"}], "PUT", PUT_ITEMS_PATH),
        ([{"accountingEntryId": fakes.entry_id(1), "state": "failed"}], "PUT", PUT_ITEMS_PATH),
        ({"endpointUrl": "https://x", "eventTypes": ["a", "a"]}, "POST", "/v1/subscriptions"),
    ]
    for body, method, path in bad_requests:
        with pytest.raises(jsonschema.ValidationError):
            check_request(body, method, path)


def test_fakes_match_the_response_schemas():
    """The JSON our fakes answer with is what Pleo's schemas describe."""
    check_response(fakes.page([fakes.job_json()]), "GET", "/v3/export-jobs")
    check_response({"data": fakes.job_json()}, "GET", "/v3/export-jobs/{jobId}")
    check_response(fakes.page([fakes.job_item_json()]), "GET", PUT_ITEMS_PATH)
    check_response(fakes.page([fakes.export_item_json()]), "GET", "/v3/export-items")
    check_response({"data": fakes.subscription_json()}, "GET", "/v1/subscriptions/{id}")
    check_response(fakes.page([fakes.subscription_json()]), "GET", "/v1/subscriptions")
    for raw in (fakes.job_json(), fakes.job_item_json(), fakes.subscription_json()):
        assert all(
            fakes.PLEO_TIMESTAMP.fullmatch(v) for k, v in raw.items() if k.endswith("At") and v
        )


# --- Malformed responses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"body": "<html><body>Login</body></html>", "content_type": "text/html"}, "HTML page"),
        ({"body": '{"data": {"id": "8f6e', "content_type": "application/json"}, "invalid JSON"),
        ({"body": ""}, "empty body"),
        ({"json": ["a list"]}, "body: expected an object, got array"),
        ({"json": {"data": None}}, "data: expected an object, got null"),
        ({"json": {"data": fakes.job_json(id=None)}}, "data.id: missing required field"),
        ({"json": {"data": fakes.job_json(id="nope")}}, "data.id: not a UUID"),
        (
            {"json": {"data": fakes.job_json(expiresIn="3600")}},
            "data.expiresIn: expected an integer, got string",
        ),
        (
            {"json": {"data": fakes.job_json(expiresIn=True)}},
            "data.expiresIn: expected an integer, got boolean",
        ),
        (
            {"json": {"data": fakes.job_json(isInteractive="yes")}},
            "data.isInteractive: expected a boolean",
        ),
        (
            {"json": {"data": fakes.job_json(createdAt="yesterday")}},
            "data.createdAt: not an ISO-8601",
        ),
        (
            {"json": {"data": fakes.job_json(createdAt=1716477692)}},
            "data.createdAt: expected a string, got integer",
        ),
        (
            {"json": {"data": fakes.job_json(failureReason=["x"])}},
            "data.failureReason: expected a string, got array",
        ),
    ],
)
def test_malformed_job_response(http, client, kwargs, problem):
    http.get(JOB, status=200, **kwargs)
    with pytest.raises(PleoResponseError) as caught:
        client.get_export_job(fakes.JOB_ID)
    assert problem in str(caught.value)
    assert str(caught.value).endswith(f"(GET /v3/export-jobs/{fakes.JOB_ID})")
    assert "malformed response" in str(caught.value)
    assert len(http.calls) == 1


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"data": [fakes.job_json()]}, "pagination: expected an object, got null"),
        ({"data": {}, "pagination": {}}, "body.data: expected an array, got object"),
        (
            {"data": [], "pagination": {"hasNextPage": "no"}},
            "pagination.hasNextPage: expected a boolean",
        ),
    ],
)
def test_malformed_list_response(http, client, body, problem):
    http.get(JOBS, json=body)
    with pytest.raises(PleoResponseError) as caught:
        client.list_export_jobs()
    assert problem in str(caught.value)
    assert (caught.value.method, caught.value.path) == ("GET", "/v3/export-jobs")


@pytest.mark.parametrize(
    "answer",
    [
        {"data": []},
        {"data": [], "errors": [{"accountingEntryId": "x", "type": "T", "message": "m"}]},
        {"data": [fakes.job_item_json(status=7)], "errors": []},
    ],
)
def test_malformed_item_update_response(http, client, answer):
    http.put(ITEMS, json=answer)
    with pytest.raises(PleoResponseError) as caught:
        put_items(client)
    assert caught.value.method == "PUT"


def test_malformed_subscription(http, client):
    http.get(SUBSCRIPTION, json={"data": fakes.subscription_json(eventTypes=[1])})
    http.get(SUBSCRIPTION, json={"data": fakes.subscription_json(status="PAUSED")})
    with pytest.raises(PleoResponseError, match="eventTypes"):
        client.get_subscription(fakes.SUBSCRIPTION_ID)
    with pytest.raises(PleoResponseError, match="unknown value 'PAUSED'"):
        client.get_subscription(fakes.SUBSCRIPTION_ID)


def test_from_api_is_usable_on_its_own():
    job = ExportJob.from_api(fakes.job_json())
    assert job.status == "pending"
    with pytest.raises(PleoResponseError, match=r"^malformed response: data\.companyId"):
        ExportJob.from_api(fakes.job_json(companyId=None))


# --- Item updates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": "done"},
        {"status": "failed", "failure_reason_type": "no_such_reason"},
        {"status": "successful", "exported_at": datetime(2025, 1, 1, 12, 0)},
        {"status": "successful", "accounting_entry_id": "not-a-uuid"},
    ],
)
def test_item_update_checks_its_values(kwargs):
    with pytest.raises(ValueError):
        ItemUpdate(**{"accounting_entry_id": fakes.entry_id(1), **kwargs})
