"""Tests for exports.pleo.client.

HTTP is faked at the transport with `responses`; where the transport's own behaviour matters
(connection refused, read timeout, dropped connection, bytes on the wire) a real local socket is
used. Request bodies are validated against Pleo's OpenAPI schemas. No test sleeps: the client's
``sleep`` is a list's ``append``.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import requests
import responses

from exports.pleo import client as pleo
from exports.pleo.client import (
    ApiKeyAuth,
    BearerAuth,
    ClientConfig,
    ErrorType,
    ExportItem,
    ExportJob,
    ExportJobItem,
    ItemFailureReasonType,
    ItemStatus,
    ItemUpdate,
    ItemUpdateError,
    JobEvent,
    JobFailureReasonType,
    JobStatus,
    PleoAuthError,
    PleoBadRequest,
    PleoClient,
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
    Subscription,
    SubscriptionStatus,
)
from tests import client_fakes as fakes
from tests import secrets_registry
from tests.openapi_schemas import validate_request_body, validate_response

URL = fakes.BASE_URL
JOBS = f"{URL}/v3/export-jobs"
JOB = f"{JOBS}/{fakes.JOB_ID}"
ITEMS = f"{JOB}/items"
PUT_ITEMS_PATH = "/v3/export-jobs/{jobId}/items"
EVENTS = f"{URL}/v3/export-job-events"
EXPORT_ITEMS = f"{URL}/v3/export-items"
SUBSCRIPTIONS = f"{URL}/v1/subscriptions"
SUBSCRIPTION = f"{SUBSCRIPTIONS}/{fakes.SUBSCRIPTION_ID}"
NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


# --- OpenAPI schemas ------------------------------------------------------------------------------
# Request bodies are checked against the operation's requestBody schema with no_extra_fields, so
# a misspelled or invented field name (say ``exportJobId``) fails as well as a wrong value.

PLEO_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def check_request(body: object, method: str, path: str) -> None:
    validate_request_body(body, method, path, no_extra_fields=True)


def check_response(body: object, method: str, path: str) -> None:
    validate_response(body, method, path, 200, no_extra_fields=True)


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
        assert all(PLEO_TIMESTAMP.fullmatch(v) for k, v in raw.items() if k.endswith("At") and v)


# --- Fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def api_key():
    return secrets_registry.new_api_key()


@pytest.fixture
def make_client(sleeps, api_key):
    clients = []

    def make(
        *,
        auth=None,
        rng=lambda: 0.5,
        clock=lambda: NOW,
        on_auth_failure=None,
        session=None,
        request_id="run-1",
        base_url=URL,
        **config,
    ):
        client = PleoClient(
            config=ClientConfig(base_url=base_url, **config),
            auth=auth or ApiKeyAuth(api_key),
            request_id=request_id,
            on_auth_failure=on_auth_failure,
            session=session,
            sleep=sleeps.append,
            rng=rng,
            clock=clock,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client):
    return make_client()


def query(call) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def sent_json(call):
    return json.loads(call.request.body)


# --- Configuration --------------------------------------------------------------------------------


def test_config_from_settings(settings):
    settings.PLEO_API_BASE_URL = "https://external.staging.pleo.io"
    settings.PLEO_CONNECT_TIMEOUT = 2.5
    settings.PLEO_READ_TIMEOUT = 12.0
    settings.PLEO_MAX_ATTEMPTS = 6
    settings.PLEO_BACKOFF_BASE = 0.1
    settings.PLEO_BACKOFF_MAX = 4.0
    settings.PLEO_RETRY_AFTER_CAP = 20.0
    settings.PLEO_ITEMS_BATCH_SIZE = 10
    settings.PLEO_PAGE_SIZE = 50
    config = ClientConfig.from_settings()
    assert config == ClientConfig(
        base_url="https://external.staging.pleo.io",
        connect_timeout=2.5,
        read_timeout=12.0,
        max_attempts=6,
        backoff_base=0.1,
        backoff_max=4.0,
        retry_after_cap=20.0,
        items_batch_size=10,
        page_size=50,
    )
    override = ClientConfig.from_settings(base_url_override="http://127.0.0.1:8000/sandbox/")
    assert override.base_url == "http://127.0.0.1:8000/sandbox"


def test_config_defaults_and_user_agent():
    from pleo_integration import __version__

    config = ClientConfig(base_url="https://external.pleo.io/")
    assert config.base_url == "https://external.pleo.io"
    assert (config.connect_timeout, config.read_timeout) == (5, 30)
    assert (config.max_attempts, config.backoff_base, config.backoff_max) == (4, 0.5, 8)
    assert (config.retry_after_cap, config.items_batch_size) == (30, 100)
    assert config.user_agent == f"pleo-export-bridge/{__version__}"


@pytest.mark.parametrize(
    "bad",
    [
        {"base_url": "external.pleo.io"},
        {"max_attempts": 0},
        {"read_timeout": 0},
        {"backoff_base": -1},
        {"items_batch_size": 0},
        {"page_size": 0},
    ],
)
def test_config_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        ClientConfig(**{"base_url": URL, **bad})


# --- Authentication -------------------------------------------------------------------------------


def test_api_key_is_basic_auth_with_empty_password(http, make_client):
    http.get(JOB, json={"data": fakes.job_json()})
    make_client(auth=ApiKeyAuth("my-api-key")).get_export_job(fakes.JOB_ID)
    # base64("my-api-key:") computed by hand, not by the code under test
    assert http.calls[0].request.headers["Authorization"] == "Basic bXktYXBpLWtleTo="


def test_bearer_token_is_fetched_for_every_request(http, make_client):
    tokens = iter(["token-one", "token-two"])
    client = make_client(auth=BearerAuth(lambda: next(tokens)))
    http.get(JOB, json={"data": fakes.job_json()})
    client.get_export_job(fakes.JOB_ID)
    client.get_export_job(fakes.JOB_ID)
    assert [c.request.headers["Authorization"] for c in http.calls] == [
        "Bearer token-one",
        "Bearer token-two",
    ]


def test_bearer_refreshes_once_after_401_and_resends(http, make_client):
    state = {"token": "old-token"}
    refreshes = []

    def refresh():
        refreshes.append(1)
        state["token"] = "new-token"
        return True

    failures = []
    client = make_client(
        auth=BearerAuth(lambda: state["token"], refresh), on_auth_failure=failures.append
    )
    http.post(EVENTS, status=401, json={"type": "UNAUTHORIZED", "message": "expired"})
    http.post(EVENTS, status=202)
    client.post_export_job_event(fakes.JOB_ID, JobEvent.STARTED)
    assert [c.request.headers["Authorization"] for c in http.calls] == [
        "Bearer old-token",
        "Bearer new-token",
    ]
    assert refreshes == [1]
    assert failures == []


def test_bearer_second_401_is_final(http, make_client, sleeps):
    refreshes = []
    failures = []
    auth = BearerAuth(lambda: "tok", lambda: refreshes.append(1) or True)
    client = make_client(auth=auth, on_auth_failure=failures.append)
    http.get(JOB, status=401, json={"type": "UNAUTHORIZED", "message": "no"})
    with pytest.raises(PleoAuthError) as caught:
        client.get_export_job(fakes.JOB_ID)
    assert len(http.calls) == 2
    assert refreshes == [1]
    assert failures == [caught.value]
    assert sleeps == []


def test_bearer_refresh_returning_false_is_final(http, make_client):
    client = make_client(auth=BearerAuth(lambda: "tok", lambda: False))
    http.get(JOB, status=401)
    with pytest.raises(PleoAuthError):
        client.get_export_job(fakes.JOB_ID)
    assert len(http.calls) == 1


def test_api_key_401_is_final_without_retry(http, client):
    http.get(JOB, status=401)
    with pytest.raises(PleoAuthError):
        client.get_export_job(fakes.JOB_ID)
    assert len(http.calls) == 1


def test_empty_bearer_token_raises_without_http(http, make_client):
    failures = []
    client = make_client(auth=BearerAuth(lambda: ""), on_auth_failure=failures.append)
    with pytest.raises(PleoAuthError, match="no bearer token") as caught:
        client.get_export_job(fakes.JOB_ID)
    assert (caught.value.method, caught.value.path) == ("GET", f"/v3/export-jobs/{fakes.JOB_ID}")
    assert len(http.calls) == 0
    assert failures == []  # no credential was refused by Pleo


def test_auth_reprs_hide_secrets(api_key, make_client):
    token = secrets_registry.register("bearer-secret-token-123")
    key_auth = ApiKeyAuth(api_key)
    bearer = BearerAuth(lambda: token, lambda: True)
    encoded = base64.b64encode(f"{api_key}:".encode()).decode()
    for text in (repr(key_auth), str(key_auth), repr(bearer), repr(make_client(auth=key_auth))):
        assert api_key not in text and encoded not in text and token not in text
    assert "redacted" in repr(key_auth)
    with pytest.raises(ValueError):
        ApiKeyAuth("")


@pytest.mark.parametrize("status", [401, 403])
def test_final_auth_failure_calls_back_and_disables_the_client(http, make_client, status):
    failures = []
    client = make_client(on_auth_failure=failures.append)
    http.get(JOB, status=status, json={"type": "FORBIDDEN", "message": "Key revoked"})
    with pytest.raises(PleoAuthError) as caught:
        client.get_export_job(fakes.JOB_ID)
    assert failures == [caught.value]
    assert caught.value.status == status
    # every later call is refused without any HTTP
    with pytest.raises(PleoAuthError, match="refused earlier"):
        client.post_export_job_event(fakes.JOB_ID, JobEvent.STARTED)
    with pytest.raises(PleoAuthError):
        client.list_export_jobs()
    assert len(http.calls) == 1
    assert len(failures) == 1


def test_on_auth_failure_error_is_logged_and_auth_error_still_raised(http, make_client, caplog):
    def broken(exc):
        raise RuntimeError("database is locked")

    client = make_client(on_auth_failure=broken)
    http.get(JOB, status=401)
    with pytest.raises(PleoAuthError):
        client.get_export_job(fakes.JOB_ID)
    assert "on_auth_failure callback failed" in caplog.text


# --- Headers, timeouts, session -------------------------------------------------------------------


def test_headers_on_every_call(http, client):
    from pleo_integration import __version__

    http.get(JOB, json={"data": fakes.job_json()})
    http.post(EVENTS, status=202)
    client.get_export_job(fakes.JOB_ID)
    client.request_id = "run-2"
    client.post_export_job_event(fakes.JOB_ID, "started")
    get, post = (call.request.headers for call in http.calls)
    assert get["X-Request-Id"] == "run-1" and post["X-Request-Id"] == "run-2"
    for headers in (get, post):
        assert headers["User-Agent"] == f"pleo-export-bridge/{__version__}"
        assert headers["Accept"] == "application/json"
    assert post["Content-Type"] == "application/json;charset=UTF-8"
    assert "Content-Type" not in get


def test_a_request_id_is_generated_when_none_is_given(http, make_client):
    client = make_client(request_id=None)
    http.get(JOB, json={"data": fakes.job_json()})
    client.get_export_job(fakes.JOB_ID)
    assert re.fullmatch(r"[0-9a-f]{32}", http.calls[0].request.headers["X-Request-Id"])


def test_explicit_timeouts_on_every_call(http, make_client):
    client = make_client(connect_timeout=3, read_timeout=17)
    http.get(JOBS, json=fakes.page([]))
    http.get(JOB, json={"data": fakes.job_json()})
    http.post(EVENTS, status=202)
    http.put(ITEMS, json={"data": [], "errors": []})
    http.get(EXPORT_ITEMS, json=fakes.page([]))
    http.delete(SUBSCRIPTION, status=204)
    client.list_export_jobs()
    client.get_export_job(fakes.JOB_ID)
    client.post_export_job_event(fakes.JOB_ID, JobEvent.STARTED)
    client.update_export_job_items(fakes.JOB_ID, [ItemUpdate.successful(fakes.entry_id(1))])
    client.list_export_items(fakes.JOB_ID)
    client.delete_subscription(fakes.SUBSCRIPTION_ID)
    assert len(http.calls) == 6
    for call in http.calls:
        assert call.request.req_kwargs["timeout"] == (3, 17)


def test_urllib3_retries_are_off(make_client):
    own = make_client()
    given = requests.Session()
    shared = make_client(session=given)
    for client in (own, shared):
        retry = client._session.get_adapter(f"{URL}/v3/export-jobs").max_retries
        assert retry.total == 0 and retry.connect == 0 and retry.read is False
        assert retry.status == 0 and retry.redirect == 0
        assert retry.respect_retry_after_header is False


def test_close_closes_only_an_owned_session(make_client, monkeypatch):
    closed = []
    given = requests.Session()
    monkeypatch.setattr(given, "close", lambda: closed.append("given"))
    with make_client(session=given):
        pass
    assert closed == []
    with make_client() as owned:
        monkeypatch.setattr(owned._session, "close", lambda: closed.append("owned"))
    assert closed == ["owned"]


# --- Export jobs ----------------------------------------------------------------------------------


def test_list_export_jobs_repeats_statuses_and_sorts_oldest_first(http, client):
    newest = fakes.job_json(id=fakes.JOB_ID_2, createdAt="2025-05-24T08:00:00Z")
    oldest = fakes.job_json(status="in_progress", startedAt="2025-05-23T15:30:00Z")
    http.get(JOBS, json=fakes.page([newest, oldest]))
    jobs = client.list_export_jobs(
        company_id=uuid.UUID(fakes.COMPANY_ID), statuses=[JobStatus.PENDING, "in_progress"]
    )
    assert query(http.calls[0]) == {
        "company_id": [fakes.COMPANY_ID],
        "statuses": ["pending", "in_progress"],
    }
    assert urlsplit(http.calls[0].request.url).path == "/v3/export-jobs"
    assert http.calls[0].request.method == "GET"
    assert [str(job.id) for job in jobs] == [fakes.JOB_ID, fakes.JOB_ID_2]
    assert jobs[0].status is JobStatus.IN_PROGRESS
    assert jobs[0].started_at == datetime(2025, 5, 23, 15, 30, tzinfo=UTC)


def test_list_export_jobs_defaults_to_unfinished_and_none_means_no_filter(http, client):
    http.get(JOBS, json=fakes.page([]))
    assert client.list_export_jobs() == []
    assert client.list_export_jobs(statuses=None, limit=50) == []
    assert query(http.calls[0]) == {"statuses": ["pending", "in_progress"]}
    assert query(http.calls[1]) == {"limit": ["50"]}


def test_list_export_jobs_ties_are_broken_by_id(http, client):
    second = fakes.job_json(id=fakes.JOB_ID_2)
    first = fakes.job_json()
    http.get(JOBS, json=fakes.page([second, first]))
    assert [str(job.id) for job in client.list_export_jobs()] == [fakes.JOB_ID, fakes.JOB_ID_2]


def test_get_export_job_parses_every_field(http, client):
    raw = fakes.job_json(
        status="failed",
        startedAt="2025-05-23T15:30:00Z",
        completedAt="2025-05-23T15:40:00+00:00",
        expiredAt="2025-05-23T16:40:00Z",
        failureReason="ERP down",
        failureReasonType="accounting_system_unreachable",
        vendorBasedBookkeeping=True,
    )
    http.get(JOB, json={"data": raw})
    job = client.get_export_job(fakes.JOB_ID)
    assert job == ExportJob(
        id=uuid.UUID(fakes.JOB_ID),
        company_id=uuid.UUID(fakes.COMPANY_ID),
        status=JobStatus.FAILED,
        created_at=datetime(2025, 5, 23, 15, 21, 32, tzinfo=UTC),
        expires_in=3600,
        is_interactive=True,
        number_of_items=2,
        vendor_based_bookkeeping=True,
        created_by=uuid.UUID("0b1c2d3e-0000-4000-8000-00000000000b"),
        started_at=datetime(2025, 5, 23, 15, 30, tzinfo=UTC),
        last_updated_at=datetime(2025, 5, 23, 15, 21, 32, tzinfo=UTC),
        completed_at=datetime(2025, 5, 23, 15, 40, tzinfo=UTC),
        expired_at=datetime(2025, 5, 23, 16, 40, tzinfo=UTC),
        failure_reason="ERP down",
        failure_reason_type="accounting_system_unreachable",
    )
    assert job.raw == raw
    assert job.is_terminal
    assert job.created_at.tzinfo is not None
    assert job.failure_reason_type == JobFailureReasonType.ACCOUNTING_SYSTEM_UNREACHABLE


def test_job_without_offset_is_read_as_utc_and_optional_fields_may_be_absent(http, client):
    raw = {
        key: value
        for key, value in fakes.job_json(createdAt="2025-05-23T15:21:32").items()
        if key not in {"createdBy", "lastUpdatedAt", "failureReason"}
    }
    http.get(JOB, json={"data": raw})
    job = client.get_export_job(fakes.JOB_ID)
    assert job.created_at == datetime(2025, 5, 23, 15, 21, 32, tzinfo=UTC)
    assert job.created_by is None and job.last_updated_at is None
    assert not job.is_terminal


def test_post_started_event(http, client):
    http.post(EVENTS, status=202)
    assert client.post_export_job_event(fakes.JOB_ID, JobEvent.STARTED) is None
    call = http.calls[0]
    assert call.request.method == "POST"
    assert sent_json(call) == {"jobId": fakes.JOB_ID, "event": "started"}
    check_request(sent_json(call), "POST", "/v3/export-job-events")


def test_post_failed_event_with_reason(http, client):
    http.post(EVENTS, status=202)
    client.post_export_job_event(
        fakes.JOB_ID,
        "failed",
        failure_reason="Failed to reach the Accounting System.",
        failure_reason_type=JobFailureReasonType.ACCOUNTING_SYSTEM_UNREACHABLE,
    )
    body = sent_json(http.calls[0])
    assert body == {
        "jobId": fakes.JOB_ID,
        "event": "failed",
        "failureReason": "Failed to reach the Accounting System.",
        "failureReasonType": "accounting_system_unreachable",
    }
    check_request(body, "POST", "/v3/export-job-events")


def test_event_arguments_are_checked_before_any_http(http, client):
    with pytest.raises(ValueError, match="only with 'failed'"):
        client.post_export_job_event(fakes.JOB_ID, "completed", failure_reason="x")
    with pytest.raises(ValueError):
        client.post_export_job_event(fakes.JOB_ID, "canceled")
    with pytest.raises(ValueError):
        client.post_export_job_event(
            fakes.JOB_ID, "failed", failure_reason_type="accounting_system_validation_failure"
        )
    with pytest.raises(ValueError, match="job_id must be a UUID"):
        client.post_export_job_event("../../v1/subscriptions", "started")
    assert len(http.calls) == 0


def test_create_export_job(http, client):
    http.post(JOBS, status=201, json={"data": fakes.job_json()})
    job = client.create_export_job(
        fakes.COMPANY_ID,
        [fakes.entry_id(1), uuid.UUID(fakes.entry_id(2))],
        employee_id="0b1c2d3e-0000-4000-8000-00000000000b",
        is_interactive=False,
        vendor_based_bookkeeping=True,
    )
    assert job.id == uuid.UUID(fakes.JOB_ID)
    body = sent_json(http.calls[0])
    assert body == {
        "companyId": fakes.COMPANY_ID,
        "accountingEntryIds": [fakes.entry_id(1), fakes.entry_id(2)],
        "employeeId": "0b1c2d3e-0000-4000-8000-00000000000b",
        "isInteractive": False,
        "options": {"vendorBasedBookkeeping": True},
    }
    check_request(body, "POST", "/v3/export-jobs")


def test_create_export_job_conflict(http, client):
    http.post(
        JOBS,
        status=409,
        json={"type": "EXPORT_ALREADY_IN_PROGRESS", "message": "Export Job already in progress."},
    )
    with pytest.raises(PleoConflict) as caught:
        client.create_export_job(fakes.COMPANY_ID, [fakes.entry_id(1)])
    assert caught.value.error_type == ErrorType.EXPORT_ALREADY_IN_PROGRESS
    assert sent_json(http.calls[0]) == {
        "companyId": fakes.COMPANY_ID,
        "accountingEntryIds": [fakes.entry_id(1)],
    }
    assert len(http.calls) == 1


# --- Items ----------------------------------------------------------------------------------------


def test_list_export_job_items_with_status_over_pages(http, client):
    done = fakes.job_item_json(
        2,
        status="successful",
        exportedAt="2025-05-23T16:00:00Z",
        externalId="V-1",
        externalUrl="https://erp.example/V-1",
    )
    http.get(ITEMS, json=fakes.page([fakes.job_item_json(1)], next_cursor="CURSORA"))
    http.get(ITEMS, json=fakes.page([done]))
    items = client.list_export_job_items(fakes.JOB_ID, status=ItemStatus.PENDING, limit=1)
    assert query(http.calls[0]) == {"status": ["pending"], "limit": ["1"]}
    assert query(http.calls[1]) == {"status": ["pending"], "limit": ["1"], "after": ["CURSORA"]}
    assert [item.accounting_entry_id for item in items] == [
        uuid.UUID(fakes.entry_id(1)),
        uuid.UUID(fakes.entry_id(2)),
    ]
    assert items[1] == ExportJobItem(
        accounting_entry_id=uuid.UUID(fakes.entry_id(2)),
        export_job_id=uuid.UUID(fakes.JOB_ID),
        status=ItemStatus.SUCCESSFUL,
        exported_at=datetime(2025, 5, 23, 16, 0, tzinfo=UTC),
        external_id="V-1",
        external_url="https://erp.example/V-1",
    )
    assert items[0].raw == fakes.job_item_json(1)


def test_list_export_items(http, client):
    raw = fakes.export_item_json(1)
    http.get(EXPORT_ITEMS, json=fakes.page([raw]))
    items = client.list_export_items(uuid.UUID(fakes.JOB_ID))
    assert query(http.calls[0]) == {"job_id": [fakes.JOB_ID]}
    assert items == [
        ExportItem(
            accounting_entry_id=uuid.UUID(fakes.entry_id(1)),
            company_id=uuid.UUID(fakes.COMPANY_ID),
            date=datetime(2025, 5, 20, tzinfo=UTC),
            type="card_purchase",
        )
    ]
    assert items[0].raw == raw
    assert items[0].raw["accountingEntryLines"][0]["lineAmount"]["inWalletCurrency"]["value"]


def test_update_export_job_items_body_and_result(http, client):
    exported = datetime(2025, 5, 23, 18, 0, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    updates = [
        ItemUpdate.successful(
            fakes.entry_id(1), exported_at=exported, external_id="V-1", external_url="https://e/1"
        ),
        ItemUpdate.failed(
            uuid.UUID(fakes.entry_id(2)), "Vendor blocked in the ERP", "vendor_unknown"
        ),
        ItemUpdate(fakes.entry_id(3), "successful"),
    ]
    answer = {
        "data": [
            fakes.job_item_json(1, status="successful", exportedAt="2025-05-23T16:00:05Z"),
            fakes.job_item_json(
                2,
                status="failed",
                failureReason="Vendor blocked in the ERP",
                failureReasonType="vendor_unknown",
            ),
        ],
        "errors": [
            {
                "accountingEntryId": fakes.entry_id(3),
                "type": "ACCOUNTING_ENTRY_DOES_NOT_EXIST",
                "message": "No such entry",
            }
        ],
    }
    check_response(answer, "PUT", PUT_ITEMS_PATH)
    http.put(ITEMS, json=answer)
    result = client.update_export_job_items(fakes.JOB_ID, updates)
    body = sent_json(http.calls[0])
    assert http.calls[0].request.method == "PUT"
    assert body == [
        {
            "accountingEntryId": fakes.entry_id(1),
            "status": "successful",
            "exportedAt": "2025-05-23T16:00:05Z",
            "externalId": "V-1",
            "externalUrl": "https://e/1",
        },
        {
            "accountingEntryId": fakes.entry_id(2),
            "status": "failed",
            "failureReason": "Vendor blocked in the ERP",
            "failureReasonType": "vendor_unknown",
        },
        {"accountingEntryId": fakes.entry_id(3), "status": "successful"},
    ]
    check_request(body, "PUT", PUT_ITEMS_PATH)
    assert [item.status for item in result.items] == [ItemStatus.SUCCESSFUL, ItemStatus.FAILED]
    assert result.items[1].failure_reason_type == ItemFailureReasonType.VENDOR_UNKNOWN
    assert result.errors == [
        ItemUpdateError(
            uuid.UUID(fakes.entry_id(3)), ErrorType.ACCOUNTING_ENTRY_DOES_NOT_EXIST, "No such entry"
        )
    ]


def test_update_above_batch_limit_raises_without_http(http, make_client):
    client = make_client(items_batch_size=3)
    updates = [ItemUpdate.successful(fakes.entry_id(n)) for n in range(4)]
    with pytest.raises(ValueError, match="limit is 3"):
        client.update_export_job_items(fakes.JOB_ID, updates)
    assert client.update_export_job_items(fakes.JOB_ID, []) == pleo.ItemUpdateResult()
    assert len(http.calls) == 0


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


# --- Batches --------------------------------------------------------------------------------------


def _updates(count: int) -> list[ItemUpdate]:
    return [ItemUpdate.successful(fakes.entry_id(n)) for n in range(count)]


def _echo_items(request):
    body = json.loads(request.body)
    data = [
        fakes.job_item_json(0, accountingEntryId=u["accountingEntryId"], status=u["status"])
        for u in body
    ]
    return 200, {}, json.dumps({"data": data, "errors": []})


def test_batches_are_sent_in_order_and_merged(http, make_client):
    client = make_client(items_batch_size=4)
    http.add_callback(responses.PUT, ITEMS, callback=_echo_items)
    result = client.update_export_job_items_in_batches(fakes.JOB_ID, _updates(10))
    assert [len(sent_json(call)) for call in http.calls] == [4, 4, 2]
    assert [str(item.accounting_entry_id) for item in result.items] == [
        fakes.entry_id(n) for n in range(10)
    ]
    assert client.update_export_job_items_in_batches(fakes.JOB_ID, []).items == []
    with pytest.raises(ValueError):
        client.update_export_job_items_in_batches(fakes.JOB_ID, _updates(1), batch_size=5)


def test_batch_size_halves_on_413(http, make_client, caplog):
    client = make_client(items_batch_size=8)
    too_large = {
        "type": "EXPORT_JOB_ITEMS_UPDATE_LIMIT",
        "message": "Number of items is more than 2.",
    }

    def limit_two(request):
        if len(json.loads(request.body)) > 2:
            return 413, {}, json.dumps(too_large)
        return _echo_items(request)

    http.add_callback(responses.PUT, ITEMS, callback=limit_two)
    result = client.update_export_job_items_in_batches(fakes.JOB_ID, _updates(7))
    assert [len(sent_json(call)) for call in http.calls] == [7, 4, 2, 2, 2, 1]
    assert [str(item.accounting_entry_id) for item in result.items] == [
        fakes.entry_id(n) for n in range(7)
    ]
    assert "413" in caplog.text


def test_413_at_batch_size_one_propagates(http, client):
    http.put(ITEMS, status=413, json={"type": "EXPORT_JOB_ITEMS_UPDATE_LIMIT", "message": "no"})
    updates = _updates(2)
    with pytest.raises(PleoPayloadTooLarge) as caught:
        client.update_export_job_items_in_batches(fakes.JOB_ID, updates)
    assert [len(sent_json(call)) for call in http.calls] == [2, 1]
    assert caught.value.batch == (updates[0],)


def test_outcome_unknown_mid_way_carries_the_batch_in_flight(http, make_client, sleeps):
    client = make_client(items_batch_size=2)
    http.add_callback(responses.PUT, ITEMS, callback=_echo_items)
    http.put(ITEMS, body=fakes.read_timeout())
    updates = _updates(5)
    # the first registration answers once, then the read timeout repeats
    with pytest.raises(PleoOutcomeUnknown) as caught:
        client.update_export_job_items_in_batches(fakes.JOB_ID, updates)
    assert caught.value.batch == tuple(updates[2:4])
    assert [str(i.accounting_entry_id) for i in caught.value.partial_result.items] == [
        fakes.entry_id(0),
        fakes.entry_id(1),
    ]
    assert len(http.calls) == 2
    assert sleeps == []


def test_unprocessable_mid_way_also_carries_the_batch(http, make_client):
    client = make_client(items_batch_size=2)
    http.put(
        ITEMS,
        status=422,
        json={"type": "EXPORT_JOB_STATUS_UNPROCESSABLE", "message": "Export job is finished."},
    )
    updates = _updates(3)
    with pytest.raises(PleoUnprocessable) as caught:
        client.update_export_job_items_in_batches(fakes.JOB_ID, updates)
    assert caught.value.batch == tuple(updates[:2])
    assert caught.value.partial_result.items == []
    assert caught.value.error_type == ErrorType.EXPORT_JOB_STATUS_UNPROCESSABLE


# --- Subscriptions --------------------------------------------------------------------------------


def test_list_subscriptions(http, client):
    http.get(SUBSCRIPTIONS, json=fakes.page([fakes.subscription_json()]))
    subscriptions = client.list_subscriptions(
        status="ACTIVE", event_types=["v1.export-job.created", "v1.vendor.created"]
    )
    assert query(http.calls[0]) == {
        "status": ["ACTIVE"],
        "event_types": ["v1.export-job.created", "v1.vendor.created"],
    }
    assert subscriptions == [
        Subscription(
            id=uuid.UUID(fakes.SUBSCRIPTION_ID),
            endpoint_url="https://bridge.example/webhook/abc",
            event_types=("v1.export-job.created",),
            status=SubscriptionStatus.ACTIVE,
            created_at=datetime(2022, 1, 1, tzinfo=UTC),
            updated_at=datetime(2022, 1, 10, tzinfo=UTC),
        )
    ]


def test_create_subscription(http, client):
    http.post(SUBSCRIPTIONS, status=200, json={"data": fakes.subscription_json()})
    created = client.create_subscription(
        "https://bridge.example/webhook/abc",
        [pleo.WebhookEventType.EXPORT_JOB_CREATED, "v1.export-job.created"],
        custom_headers={"X-Bridge": "1"},
        endpoint_auth={"type": "NONE"},
    )
    assert created.id == uuid.UUID(fakes.SUBSCRIPTION_ID)
    body = sent_json(http.calls[0])
    assert body == {
        "endpointUrl": "https://bridge.example/webhook/abc",
        "eventTypes": ["v1.export-job.created"],
        "status": "ACTIVE",
        "customHeaders": {"X-Bridge": "1"},
        "endpointAuth": {"type": "NONE"},
    }
    check_request(body, "POST", "/v1/subscriptions")
    with pytest.raises(ValueError):
        client.create_subscription("https://x", [])


def test_update_get_delete_subscription(http, client):
    http.put(SUBSCRIPTION, json={"data": fakes.subscription_json(status="INACTIVE")})
    http.get(SUBSCRIPTION, json={"data": fakes.subscription_json()})
    http.delete(SUBSCRIPTION, status=204)
    updated = client.update_subscription(
        fakes.SUBSCRIPTION_ID,
        endpoint_url="https://bridge.example/webhook/abc",
        event_types=["v1.export-job.created"],
        status=SubscriptionStatus.INACTIVE,
    )
    assert updated.status is SubscriptionStatus.INACTIVE
    body = sent_json(http.calls[0])
    assert http.calls[0].request.method == "PUT"
    assert body == {
        "endpointUrl": "https://bridge.example/webhook/abc",
        "eventTypes": ["v1.export-job.created"],
        "status": "INACTIVE",
    }
    check_request(body, "PUT", "/v1/subscriptions/{id}")
    assert client.get_subscription(fakes.SUBSCRIPTION_ID).status is SubscriptionStatus.ACTIVE
    assert client.delete_subscription(fakes.SUBSCRIPTION_ID) is None
    assert [call.request.method for call in http.calls] == ["PUT", "GET", "DELETE"]


def test_get_subscription_secret(http, client):
    secret = secrets_registry.register("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
    http.get(f"{SUBSCRIPTION}/secret", json={"data": {"secretKey": secret}})
    check_response({"data": {"secretKey": secret}}, "GET", "/v1/subscriptions/{id}/secret")
    assert client.get_subscription_secret(fakes.SUBSCRIPTION_ID) == secret


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": {"secretKey": "whsec_TRUNCATEDSECRET',
        b'{"data": {"secretKey": 12345}}',
        b'{"data": {}}',
    ],
)
def test_malformed_secret_response_never_quotes_the_body(http, client, body, caplog):
    http.get(f"{SUBSCRIPTION}/secret", body=body, content_type="application/json")
    with pytest.raises(PleoResponseError) as caught:
        client.get_subscription_secret(fakes.SUBSCRIPTION_ID)
    assert "TRUNCATEDSECRET" not in str(caught.value) and "12345" not in str(caught.value)
    assert "secretKey" in str(caught.value) or "JSON" in str(caught.value)
    assert "TRUNCATEDSECRET" not in caplog.text


# --- Pagination -----------------------------------------------------------------------------------


def test_pagination_follows_end_cursor_until_the_last_page(http, client):
    http.get(JOBS, json=fakes.page([fakes.job_json()], next_cursor="AAAA"))
    http.get(JOBS, json=fakes.page([], next_cursor="BBBB"))
    http.get(JOBS, json=fakes.page([fakes.job_json(id=fakes.JOB_ID_2)]))
    jobs = client.list_export_jobs(statuses=[JobStatus.PENDING], limit=1)
    assert [query(call).get("after") for call in http.calls] == [None, ["AAAA"], ["BBBB"]]
    assert all(query(call)["limit"] == ["1"] for call in http.calls)
    assert all(query(call)["statuses"] == ["pending"] for call in http.calls)
    assert len(jobs) == 2


@pytest.mark.parametrize(
    ("cursors", "calls"),
    [
        (["AAAA", "AAAA"], 2),  # the next page hands back the cursor we just sent
        (["AAAA", "BBBB", "AAAA"], 3),  # a cycle
    ],
)
def test_repeated_cursor_is_a_response_error(http, client, cursors, calls):
    for cursor in cursors:
        http.get(JOBS, json=fakes.page([fakes.job_json()], next_cursor=cursor))
    with pytest.raises(PleoResponseError, match="repeats an earlier endCursor") as caught:
        client.list_export_jobs()
    assert len(http.calls) == calls
    assert (caught.value.method, caught.value.path) == ("GET", "/v3/export-jobs")


def test_missing_cursor_while_has_next_page_is_a_response_error(http, client):
    body = fakes.page([fakes.job_json()], next_cursor="AAAA")
    del body["pagination"]["endCursor"]
    http.get(JOBS, json=body)
    with pytest.raises(PleoResponseError, match="no endCursor"):
        client.list_export_jobs()
    assert len(http.calls) == 1


def test_page_limit_stops_an_endless_listing(http, client):
    counter = iter(range(100))

    def endless(request):
        body = fakes.page([fakes.job_item_json()], next_cursor=f"C{next(counter)}")
        return 200, {}, json.dumps(body)

    http.add_callback(responses.GET, ITEMS, callback=endless)
    path = f"/v3/export-jobs/{fakes.JOB_ID}/items"
    with pytest.raises(PleoResponseError, match="more than 3 pages"):
        list(client.paginate(path, max_pages=3))
    assert len(http.calls) == 3
    assert pleo.MAX_PAGES == 10_000


def test_paginate_yields_raw_items(http, client):
    http.get(ITEMS, json=fakes.page([fakes.job_item_json(1)], next_cursor="AAAA"))
    http.get(ITEMS, json=fakes.page([fakes.job_item_json(2)]))
    path = f"/v3/export-jobs/{fakes.JOB_ID}/items"
    assert list(client.paginate(path, params={"status": "pending"})) == [
        fakes.job_item_json(1),
        fakes.job_item_json(2),
    ]


# --- Retries: reads -------------------------------------------------------------------------------

TRANSIENT = {
    "refused": lambda: {"body": fakes.refused()},
    "dns": lambda: {"body": fakes.dns_failure()},
    "connect timeout": lambda: {"body": fakes.connect_timeout()},
    "read timeout": lambda: {"body": fakes.read_timeout()},
    "body read timeout": lambda: {"body": fakes.body_read_timeout()},
    "dropped": lambda: {"body": fakes.dropped()},
    "cut off": lambda: {"body": fakes.cut_off()},
    "429": lambda: {"status": 429, "json": {"type": "TOO_MANY_REQUESTS", "message": "slow down"}},
    "500": lambda: {"status": 500, "body": "Internal Server Error"},
    "502": lambda: {"status": 502, "body": "<html><title>502 Bad Gateway</title></html>"},
    "503": lambda: {"status": 503, "json": {"type": "UNAVAILABLE", "message": "maintenance"}},
    "504": lambda: {"status": 504},
}
EXHAUSTED = {
    "refused": PleoUnavailable,
    "dns": PleoUnavailable,
    "connect timeout": PleoUnavailable,
    "read timeout": PleoUnavailable,
    "body read timeout": PleoUnavailable,
    "dropped": PleoUnavailable,
    "cut off": PleoUnavailable,
    "429": PleoRateLimited,
    "500": PleoServerError,
    "502": PleoServerError,
    "503": PleoServerError,
    "504": PleoServerError,
}


@pytest.mark.parametrize("failure", TRANSIENT)
def test_get_is_retried_then_succeeds(http, client, sleeps, failure):
    for _ in range(3):
        http.get(JOB, **TRANSIENT[failure]())
    http.get(JOB, json={"data": fakes.job_json()})
    assert client.get_export_job(fakes.JOB_ID).id == uuid.UUID(fakes.JOB_ID)
    assert len(http.calls) == 4
    assert len(sleeps) == 3


@pytest.mark.parametrize("failure", TRANSIENT)
def test_get_gives_up_after_max_attempts(http, make_client, sleeps, failure):
    client = make_client(max_attempts=3)
    http.get(JOB, **TRANSIENT[failure]())
    with pytest.raises(EXHAUSTED[failure]) as caught:
        client.get_export_job(fakes.JOB_ID)
    assert len(http.calls) == 3
    assert len(sleeps) == 2
    assert (caught.value.method, caught.value.path) == ("GET", f"/v3/export-jobs/{fakes.JOB_ID}")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 413, 418, 422, 501])
def test_get_is_not_retried_on_other_errors(http, client, sleeps, status):
    http.get(JOB, status=status, json={"type": "X", "message": "no"})
    with pytest.raises(PleoHTTPError):
        client.get_export_job(fakes.JOB_ID)
    assert len(http.calls) == 1
    assert sleeps == []


# --- Retries: writes ------------------------------------------------------------------------------


def _post_event(client):
    client.post_export_job_event(fakes.JOB_ID, JobEvent.STARTED)


def _put_items(client):
    client.update_export_job_items(fakes.JOB_ID, [ItemUpdate.successful(fakes.entry_id(1))])


def _create_subscription(client):
    client.create_subscription("https://bridge.example/hook", ["v1.export-job.created"])


def _delete_subscription(client):
    client.delete_subscription(fakes.SUBSCRIPTION_ID)


WRITES = {
    "POST event": (responses.POST, EVENTS, _post_event, {"status": 202}),
    "PUT items": (responses.PUT, ITEMS, _put_items, {"json": {"data": [], "errors": []}}),
    "POST subscription": (
        responses.POST,
        SUBSCRIPTIONS,
        _create_subscription,
        {"json": {"data": fakes.subscription_json()}},
    ),
    "DELETE subscription": (responses.DELETE, SUBSCRIPTION, _delete_subscription, {"status": 204}),
}
MAYBE_SENT = ["read timeout", "body read timeout", "dropped", "cut off", "500", "502", "503", "504"]
NOT_SENT = ["refused", "dns", "connect timeout", "429"]


@pytest.mark.parametrize("write", WRITES)
@pytest.mark.parametrize("failure", MAYBE_SENT)
def test_write_is_never_retried_once_it_may_have_been_sent(http, client, sleeps, write, failure):
    method, url, call, _ = WRITES[write]
    http.add(method, url, **TRANSIENT[failure]())
    with pytest.raises(PleoOutcomeUnknown) as caught:
        call(client)
    assert len(http.calls) == 1
    assert sleeps == []
    assert "may or may not have taken effect" in str(caught.value)
    if failure.isdigit():
        assert caught.value.status == int(failure)


@pytest.mark.parametrize("write", WRITES)
@pytest.mark.parametrize("failure", NOT_SENT)
def test_write_is_retried_when_provably_not_sent(http, client, sleeps, write, failure):
    method, url, call, success = WRITES[write]
    http.add(method, url, **TRANSIENT[failure]())
    http.add(method, url, **success)
    call(client)
    assert len(http.calls) == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    ("failure", "error"), [("refused", PleoUnavailable), ("429", PleoRateLimited)]
)
def test_write_gives_up_after_max_attempts(http, client, sleeps, failure, error):
    http.post(EVENTS, **TRANSIENT[failure]())
    with pytest.raises(error):
        _post_event(client)
    assert len(http.calls) == 4
    assert len(sleeps) == 3


@pytest.mark.parametrize("status", [400, 403, 404, 409, 413, 422])
def test_write_is_never_retried_on_4xx(http, client, sleeps, status):
    http.post(EVENTS, status=status, json={"type": "X", "message": "no"})
    with pytest.raises(PleoHTTPError):
        _post_event(client)
    assert len(http.calls) == 1
    assert sleeps == []


@pytest.mark.parametrize(
    ("make_exc", "expected"),
    [
        (fakes.refused, True),
        (fakes.dns_failure, True),
        (fakes.connect_timeout, True),
        (fakes.read_timeout, False),
        (fakes.body_read_timeout, False),
        (fakes.dropped, False),
        (fakes.cut_off, False),
        (lambda: requests.exceptions.ConnectionError("something"), False),
        (lambda: requests.exceptions.SSLError("bad handshake"), False),
    ],
)
def test_provably_not_sent(make_exc, expected):
    assert pleo._provably_not_sent(make_exc()) is expected


@pytest.mark.parametrize(
    ("make_exc", "description"),
    [
        (fakes.refused, "could not connect (NewConnectionError)"),
        (fakes.dns_failure, "could not connect (NameResolutionError)"),
        (fakes.connect_timeout, "connect timeout (ConnectTimeoutError)"),
        (fakes.read_timeout, "read timeout (ReadTimeoutError)"),
        (fakes.body_read_timeout, "read timeout (ReadTimeoutError)"),
        (fakes.dropped, "connection dropped (RemoteDisconnected)"),
        (fakes.cut_off, "connection dropped (ProtocolError)"),
        (
            lambda: requests.exceptions.ConnectionError(
                pleo.ConnectTimeoutError(None, "timed out")
            ),
            "connect timeout (ConnectTimeoutError)",
        ),
        (lambda: requests.exceptions.SSLError("bad handshake"), "TLS error (SSLError)"),
        (lambda: requests.exceptions.ConnectionError("boom"), "connection error (ConnectionError)"),
        (lambda: requests.exceptions.InvalidURL("bad"), "request error (InvalidURL)"),
    ],
)
def test_transport_failures_are_described_without_urls(make_exc, description):
    assert pleo._describe_transport_failure(make_exc()) == description


def test_read_phase_evidence_beats_a_connect_error_in_the_chain():
    exc = fakes.refused()
    exc.__context__ = fakes.dropped().args[0]
    assert pleo._provably_not_sent(exc) is False


def test_a_request_that_cannot_be_built_is_a_plain_pleo_error(http, client, sleeps):
    http.get(JOB, body=requests.exceptions.InvalidHeader("bad header"))
    with pytest.raises(PleoError) as caught:
        client.get_export_job(fakes.JOB_ID)
    assert type(caught.value) is PleoError
    assert len(http.calls) == 1 and sleeps == []


# --- Backoff and Retry-After ----------------------------------------------------------------------


def _retry_once_with(http, headers, status=429):
    http.get(JOB, status=status, headers=headers)
    http.get(JOB, json={"data": fakes.job_json()})


def test_retry_after_seconds_is_a_minimum_with_jitter_on_top(http, make_client, sleeps):
    _retry_once_with(http, {"Retry-After": "7"})
    make_client(rng=lambda: 0.0).get_export_job(fakes.JOB_ID)
    _retry_once_with(http, {"Retry-After": "7"})
    make_client(rng=lambda: 0.999).get_export_job(fakes.JOB_ID)
    # attempt 1: step 0.5, jitter in [0, 0.25)
    assert sleeps[0] == 7.0
    assert 7.0 < sleeps[1] < 7.25


def test_retry_after_http_date(http, make_client, sleeps):
    header = email.utils.format_datetime(NOW + timedelta(seconds=12), usegmt=True)
    _retry_once_with(http, {"Retry-After": header}, status=503)
    make_client(rng=lambda: 0.0).get_export_job(fakes.JOB_ID)
    assert sleeps == [12.0]


@pytest.mark.parametrize(
    "header",
    ["Wed, 01 Jan 2025 11:00:00 GMT", "Wed, 01 Jan 2025 11:00:00 -0000", "soon", "", "nan", "-5"],
)
def test_unusable_or_past_retry_after_falls_back_to_backoff(http, make_client, sleeps, header):
    _retry_once_with(http, {"Retry-After": header})
    make_client(rng=lambda: 0.0).get_export_job(fakes.JOB_ID)
    assert sleeps == [0.25]


def test_retry_after_equal_to_cap_is_waited(http, make_client, sleeps):
    _retry_once_with(http, {"Retry-After": "30"})
    make_client(rng=lambda: 0.0).get_export_job(fakes.JOB_ID)
    assert sleeps == [30.0]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("31", 31.0), ("Wed, 01 Jan 2025 12:05:00 GMT", 300.0)],
)
@pytest.mark.parametrize("write", [False, True])
def test_retry_after_above_cap_fails_at_once(http, client, sleeps, header, seconds, write):
    method, url = (responses.POST, EVENTS) if write else (responses.GET, JOB)
    http.add(method, url, status=429, headers={"Retry-After": header})
    with pytest.raises(PleoRateLimited) as caught:
        _post_event(client) if write else client.get_export_job(fakes.JOB_ID)
    assert caught.value.retry_after == seconds
    assert len(http.calls) == 1
    assert sleeps == []
    assert "cap" in str(caught.value)


def test_503_retry_after_above_cap_fails_at_once_as_server_error(http, client, sleeps):
    http.get(JOB, status=503, headers={"Retry-After": "3600"})
    with pytest.raises(PleoServerError) as caught:
        client.get_export_job(fakes.JOB_ID)
    assert caught.value.retry_after == 3600
    assert len(http.calls) == 1 and sleeps == []


@pytest.mark.parametrize(
    ("rng", "config", "expected"),
    [
        (lambda: 0.0, {}, [0.25, 0.5, 1.0]),
        (lambda: 0.0, {"backoff_base": 1, "backoff_max": 3, "max_attempts": 5}, [0.5, 1, 1.5, 1.5]),
    ],
)
def test_backoff_floor(http, make_client, sleeps, rng, config, expected):
    http.get(JOB, status=503)
    with pytest.raises(PleoServerError):
        make_client(rng=rng, **config).get_export_job(fakes.JOB_ID)
    assert sleeps == expected


def test_jitter_stays_below_the_step(http, make_client, sleeps):
    http.get(JOB, status=503)
    with pytest.raises(PleoServerError):
        make_client(rng=lambda: 0.999999, max_attempts=7).get_export_job(fakes.JOB_ID)
    steps = [0.5, 1, 2, 4, 8, 8]
    assert len(sleeps) == 6
    for wait, step in zip(sleeps, steps, strict=True):
        assert step / 2 < wait < step


def test_jitter_uses_the_rng(http, make_client, sleeps):
    draws = iter([0.0, 0.5, 0.25])
    http.get(JOB, status=502)
    with pytest.raises(PleoServerError):
        make_client(rng=lambda: next(draws)).get_export_job(fakes.JOB_ID)
    assert sleeps == [0.25, 0.5 + 0.5 * 0.5, 1.0 + 0.25 * 1.0]


# --- Logging --------------------------------------------------------------------------------------


def test_each_retry_logs_one_warning_and_each_call_one_debug_line(http, client, caplog):
    caplog.set_level(logging.DEBUG, logger="exports.pleo.client")
    http.get(JOB, status=503)
    http.get(JOB, body=fakes.read_timeout())
    http.get(JOB, json={"data": fakes.job_json()})
    client.get_export_job(fakes.JOB_ID)
    records = [r for r in caplog.records if r.name == "exports.pleo.client"]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    debugs = [r for r in records if r.levelno == logging.DEBUG]
    path = f"/v3/export-jobs/{fakes.JOB_ID}"
    assert [r.getMessage() for r in warnings] == [
        f"Pleo GET {path} attempt 1/4 failed (HTTP 503); retrying in 0.38s [request_id=run-1]",
        f"Pleo GET {path} attempt 2/4 failed (read timeout (ReadTimeoutError)); retrying in "
        f"0.75s [request_id=run-1]",
    ]
    assert all(r.exc_info is None for r in warnings)
    assert len(debugs) == 3
    assert re.fullmatch(
        rf"Pleo GET {path} -> 503 in \d+ ms \[request_id=run-1\]", debugs[0].getMessage()
    )
    assert "ReadTimeout" in debugs[1].getMessage()
    assert " -> 200 in " in debugs[2].getMessage()


def test_no_secret_reaches_the_logs(http, make_client, api_key, caplog):
    caplog.set_level(logging.DEBUG)
    token = secrets_registry.register("eyJhbGciOi.bearer-token-value.sig")
    secret = secrets_registry.register("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    encoded_key = base64.b64encode(f"{api_key}:".encode()).decode()
    key_client = make_client()
    bearer_client = make_client(auth=BearerAuth(lambda: token, lambda: True))
    http.get(JOB, status=503)
    http.get(JOB, json={"data": fakes.job_json()})
    http.get(f"{SUBSCRIPTION}/secret", json={"data": {"secretKey": secret}})
    http.post(EVENTS, status=401)
    http.put(ITEMS, body=fakes.dropped())
    key_client.get_export_job(fakes.JOB_ID)
    bearer_client.get_export_job(fakes.JOB_ID)
    assert key_client.get_subscription_secret(fakes.SUBSCRIPTION_ID) == secret
    errors = []
    for action in (
        lambda: _post_event(bearer_client),
        lambda: _post_event(key_client),
        lambda: _put_items(make_client()),
    ):
        with pytest.raises(PleoError) as caught:
            action()
        errors.append(caught.value)
    text = caplog.text + " ".join(f"{e!s} {e!r}" for e in errors)
    assert "Pleo GET" in caplog.text  # the logs were captured
    for value in (api_key, encoded_key, token, secret):
        assert value not in text


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
        _put_items(client)
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


# --- Real sockets ---------------------------------------------------------------------------------


@pytest.fixture
def plain_session():
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment between us and 127.0.0.1
    yield session
    session.close()


def test_real_connection_refused_on_post_is_retried(make_client, plain_session, sleeps):
    client = make_client(
        base_url=f"http://127.0.0.1:{fakes.closed_port()}", session=plain_session, connect_timeout=2
    )
    with pytest.raises(PleoUnavailable, match="could not connect"):
        _post_event(client)
    assert len(sleeps) == 3


def test_real_read_timeout_on_post_is_outcome_unknown(make_client, plain_session, sleeps):
    with fakes.RawServer(fakes.silent) as server:
        client = make_client(base_url=server.url, session=plain_session, read_timeout=0.3)
        with pytest.raises(PleoOutcomeUnknown, match="read timeout"):
            _post_event(client)
        assert len(server.requests) == 1
    assert sleeps == []


def test_real_read_timeout_on_get_is_retried(make_client, plain_session, sleeps):
    with fakes.RawServer(fakes.silent) as server:
        client = make_client(
            base_url=server.url, session=plain_session, read_timeout=0.2, max_attempts=3
        )
        with pytest.raises(PleoUnavailable, match="read timeout"):
            client.get_export_job(fakes.JOB_ID)
        assert len(server.requests) == 3
    assert len(sleeps) == 2


def test_real_dropped_connection(make_client, plain_session, sleeps):
    with fakes.RawServer(fakes.hang_up) as server:
        client = make_client(base_url=server.url, session=plain_session, max_attempts=2)
        with pytest.raises(PleoOutcomeUnknown, match="connection dropped"):
            _post_event(client)
        assert len(server.requests) == 1
        with pytest.raises(PleoUnavailable, match="connection dropped"):
            client.get_export_job(fakes.JOB_ID)
        assert len(server.requests) == 3


def test_real_bytes_on_the_wire(make_client, plain_session, caplog):
    caplog.set_level(logging.DEBUG)
    with fakes.RawServer(fakes.answer(202, None)) as server:
        client = make_client(
            base_url=server.url,
            session=plain_session,
            auth=ApiKeyAuth("my-api-key"),
            request_id="run-wire",
        )
        client.post_export_job_event(fakes.JOB_ID, JobEvent.STARTED)
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v3/export-job-events HTTP/1.1"
    headers = {
        name.lower(): value.strip() for name, _, value in (ln.partition(":") for ln in lines[1:])
    }
    assert headers["authorization"] == "Basic bXktYXBpLWtleTo="
    assert headers["x-request-id"] == "run-wire"
    assert headers["content-type"] == "application/json;charset=UTF-8"
    assert headers["accept"] == "application/json"
    assert headers["user-agent"].startswith("pleo-export-bridge/")
    assert json.loads(body) == {"jobId": fakes.JOB_ID, "event": "started"}
    assert "bXktYXBpLWtleTo=" not in caplog.text and "my-api-key" not in caplog.text


# --- The before_request hook (the request budget plugs in here) -----------------------------------


def _hooked_client(api_key, sleeps, hook, auth=None):
    return PleoClient(
        config=ClientConfig(base_url=URL),
        auth=auth or ApiKeyAuth(api_key),
        request_id="run-hook",
        sleep=sleeps.append,
        rng=lambda: 0.5,
        clock=lambda: NOW,
        before_request=hook,
    )


def test_before_request_is_called_before_every_attempt_retries_included(http, api_key, sleeps):
    seen = []
    client = _hooked_client(api_key, sleeps, lambda method, path: seen.append((method, path)))
    http.get(JOB, status=429, json={"type": "TOO_MANY_REQUESTS", "message": "slow"})
    http.get(JOB, status=503)
    http.get(JOB, json={"data": fakes.job_json()})
    client.get_export_job(fakes.JOB_ID)
    path = f"/v3/export-jobs/{fakes.JOB_ID}"
    assert seen == [("GET", path)] * 3
    assert len(http.calls) == 3 and len(sleeps) == 2
    assert client.budget_exhausted is None


def test_before_request_is_called_for_the_resend_after_a_token_refresh(http, api_key, sleeps):
    seen = []
    state = {"token": "old-token"}
    auth = BearerAuth(lambda: state["token"], lambda: state.update(token="new-token") or True)
    client = _hooked_client(api_key, sleeps, lambda m, p: seen.append(m), auth=auth)
    http.post(EVENTS, status=401, json={"type": "UNAUTHORIZED", "message": "expired"})
    http.post(EVENTS, status=202)
    client.post_export_job_event(fakes.JOB_ID, JobEvent.STARTED)
    assert seen == ["POST", "POST"]


def test_budget_exhausted_from_the_hook_is_raised_unretried_and_nothing_is_sent(
    http, api_key, sleeps
):
    retry_at = NOW + timedelta(seconds=7)
    calls = []

    def hook(method, path):
        calls.append(method)
        raise pleo.BudgetExhausted("budget spent", retry_at=retry_at, key="credential:1")

    client = _hooked_client(api_key, sleeps, hook)
    with pytest.raises(pleo.BudgetExhausted) as caught:
        client.post_export_job_event(fakes.JOB_ID, JobEvent.STARTED)
    assert isinstance(caught.value, PleoError)  # generic handlers treat it as "not sent"
    assert caught.value.retry_at == retry_at
    assert (caught.value.method, caught.value.path) == ("POST", "/v3/export-job-events")
    assert client.budget_exhausted is caught.value
    assert calls == ["POST"] and len(http.calls) == 0 and sleeps == []


def test_budget_exhausted_on_a_retry_stops_the_call_there(http, api_key, sleeps):
    allowed = iter([True, False])

    def hook(method, path):
        if not next(allowed):
            raise pleo.BudgetExhausted("budget spent", retry_at=NOW)

    client = _hooked_client(api_key, sleeps, hook)
    http.get(JOB, status=429, json={"type": "TOO_MANY_REQUESTS", "message": "slow"})
    with pytest.raises(pleo.BudgetExhausted):
        client.get_export_job(fakes.JOB_ID)
    assert len(http.calls) == 1 and len(sleeps) == 1


def test_other_hook_errors_pass_through_untouched(http, api_key, sleeps):
    def hook(method, path):
        raise RuntimeError("hook broke")

    client = _hooked_client(api_key, sleeps, hook)
    with pytest.raises(RuntimeError, match="hook broke"):
        client.get_export_job(fakes.JOB_ID)
    assert client.budget_exhausted is None and len(http.calls) == 0


def test_page_size_is_sent_as_the_limit_of_list_calls_that_give_none(http, make_client):
    client = make_client(page_size=100)
    http.get(JOBS, json=fakes.page([fakes.job_json()]))
    http.get(SUBSCRIPTIONS, json=fakes.page([]))
    client.list_export_jobs()
    client.list_subscriptions(limit=5)
    assert query(http.calls[0])["limit"] == ["100"]
    assert query(http.calls[1])["limit"] == ["5"]


# --- Shared keep-alive sessions ----------------------------------------------------------------


def test_shared_session_is_one_per_base_url_and_thread():
    first = pleo.shared_session("http://127.0.0.1:1/")
    assert pleo.shared_session("http://127.0.0.1:1") is first
    assert pleo.shared_session("http://127.0.0.1:2") is not first
    other_thread = []
    thread = threading.Thread(
        target=lambda: other_thread.append(pleo.shared_session("http://127.0.0.1:1"))
    )
    thread.start()
    thread.join()
    assert other_thread[0] is not first


def test_shared_session_is_new_in_a_forked_child(monkeypatch):
    parent = pleo.shared_session("http://127.0.0.1:3")
    monkeypatch.setattr(pleo.os, "getpid", lambda: -1)
    assert pleo.shared_session("http://127.0.0.1:3") is not parent


@responses.activate
def test_shared_session_keeps_no_cookies_and_its_adapter_is_mounted_once(make_client):
    base = "http://localhost:7"  # a loopback host: plain http goes to no other (issue 15 §3)
    responses.get(
        f"{base}/v3/export-jobs",
        json=fakes.page([]),
        headers={"Set-Cookie": "lb=node-7; Path=/"},
    )
    session = pleo.shared_session(base)
    adapter = session.adapters[f"{base}/"]
    for _ in range(2):
        client = make_client(base_url=base, session=session)
        client.list_export_jobs(company_id=str(uuid.uuid4()))
        client.close()  # a given session is not closed by the client
    assert session.adapters[f"{base}/"] is adapter
    assert len(session.cookies) == 0
    assert "Cookie" not in responses.calls[1].request.headers


def test_shared_session_reads_proxies_and_ca_bundle_from_the_environment_once(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/company-ca.pem")
    monkeypatch.setattr(pleo, "_shared_sessions", threading.local())
    proxied = pleo.shared_session("https://external.pleo.example")
    assert proxied.trust_env is False  # not re-read on every request
    assert proxied.proxies["https"] == "http://proxy.example:3128"
    assert proxied.verify == "/etc/ssl/company-ca.pem"
    bypassed = pleo.shared_session("https://internal.example")
    assert "https" not in bypassed.proxies
