"""exports.pleo.errors: which error an answer becomes, what it says, and the hierarchy that keeps
"outcome unknown" apart."""

from __future__ import annotations

import pytest

from exports.pleo import (
    ErrorType,
    JobEvent,
    PleoAuthError,
    PleoBadRequest,
    PleoConflict,
    PleoError,
    PleoHTTPError,
    PleoNotFound,
    PleoOutcomeUnknown,
    PleoPayloadTooLarge,
    PleoRateLimited,
    PleoResponseError,
    PleoServerError,
    PleoUnavailable,
    PleoUnprocessable,
)
from tests import client_fakes as fakes
from tests.client_fakes import (
    EVENTS,
    JOB,
)

# --- Error mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, PleoBadRequest),
        (401, PleoAuthError),
        (403, PleoAuthError),
        (404, PleoNotFound),
        (405, PleoBadRequest),
        (409, PleoConflict),
        (413, PleoPayloadTooLarge),
        (418, PleoBadRequest),
        (422, PleoUnprocessable),
        (429, PleoRateLimited),
        (500, PleoServerError),
        (501, PleoServerError),
        (503, PleoServerError),
    ],
)
def test_status_maps_to_error_class_with_json_body(http, make_client, status, error):
    http.get(JOB, status=status, json={"type": "SOME_TYPE", "message": "Something\nhappened"})
    with pytest.raises(error) as caught:
        make_client(max_attempts=1).get_export_job(fakes.JOB_ID)
    exc = caught.value
    assert type(exc) is error
    assert (exc.status, exc.error_type, exc.message) == (status, "SOME_TYPE", "Something happened")
    assert (exc.method, exc.path) == ("GET", f"/v3/export-jobs/{fakes.JOB_ID}")
    assert str(exc) == (
        f"{status} SOME_TYPE: Something happened (GET /v3/export-jobs/{fakes.JOB_ID})"
    )


@pytest.mark.parametrize(
    ("status", "kwargs", "error", "message"),
    [
        (
            502,
            {
                "body": "<html><head><title>502 Bad Gateway</title></head></html>",
                "content_type": "text/html",
            },
            PleoServerError,
            "502 Bad Gateway",
        ),
        (
            500,
            {"body": "<!DOCTYPE html><html><body>oops</body></html>", "content_type": "text/html"},
            PleoServerError,
            "Internal Server Error",
        ),
        (
            400,
            {"body": "company_id is not a UUID", "content_type": "text/plain"},
            PleoBadRequest,
            "company_id is not a UUID",
        ),
        (404, {"body": ""}, PleoNotFound, "Not Found"),
        (599, {"body": ""}, PleoServerError, "HTTP 599"),
        (403, {"json": {"error": "insufficient_scope"}}, PleoAuthError, "insufficient_scope"),
        (409, {"json": {"type": "EXPORT_ALREADY_IN_PROGRESS"}}, PleoConflict, "Conflict"),
        (422, {"json": ["not", "an", "object"]}, PleoUnprocessable, "Unprocessable"),
    ],
)
def test_error_bodies_that_are_not_exception_info(
    http, make_client, status, kwargs, error, message
):
    http.get(JOB, status=status, **kwargs)
    with pytest.raises(error) as caught:
        make_client(max_attempts=1).get_export_job(fakes.JOB_ID)
    assert caught.value.status == status
    assert caught.value.message.startswith(message)
    assert "\n" not in str(caught.value)


def test_str_of_a_422_on_an_event(http, client):
    http.post(
        EVENTS,
        status=422,
        json={
            "type": "INVALID_EXPORT_JOB_STATUS_CHANGE",
            "message": "Export Job status change failed",
        },
    )
    with pytest.raises(PleoUnprocessable) as caught:
        client.post_export_job_event(fakes.JOB_ID, JobEvent.STARTED)
    assert str(caught.value) == (
        "422 INVALID_EXPORT_JOB_STATUS_CHANGE: Export Job status change failed "
        "(POST /v3/export-job-events)"
    )
    assert caught.value.error_type == ErrorType.INVALID_EXPORT_JOB_STATUS_CHANGE
    assert repr(caught.value).startswith("PleoUnprocessable('422 INVALID_EXPORT_JOB_STATUS_CHANGE")


def test_a_redirect_is_not_followed(http, client):
    http.get(JOB, status=302, headers={"Location": "https://elsewhere.example/"})
    with pytest.raises(PleoResponseError, match="unexpected HTTP status 302"):
        client.get_export_job(fakes.JOB_ID)
    assert len(http.calls) == 1


def test_exception_hierarchy():
    assert issubclass(PleoHTTPError, PleoError)
    for cls in (
        PleoBadRequest,
        PleoAuthError,
        PleoNotFound,
        PleoConflict,
        PleoPayloadTooLarge,
        PleoUnprocessable,
        PleoRateLimited,
        PleoServerError,
    ):
        assert issubclass(cls, PleoHTTPError)
    for cls in (PleoOutcomeUnknown, PleoUnavailable, PleoResponseError):
        assert issubclass(cls, PleoError) and not issubclass(cls, PleoHTTPError)
    assert str(PleoError("plain")) == "plain"
