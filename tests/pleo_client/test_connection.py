"""exports.pleo.connection: the client's configuration, the auth objects, headers and timeouts on
every call, and the shared keep-alive sessions (HTTP faked with `responses`)."""

from __future__ import annotations

import base64
import os
import re
import threading
import uuid

import pytest
import requests
import responses

from exports import pleo
from exports.pleo import (
    ApiKeyAuth,
    BearerAuth,
    ClientConfig,
    ItemUpdate,
    JobEvent,
    PleoAuthError,
)
from tests import client_fakes as fakes
from tests import secrets_registry
from tests.client_fakes import (
    EVENTS,
    EXPORT_ITEMS,
    ITEMS,
    JOB,
    JOBS,
    SUBSCRIPTION,
    URL,
)

# --- Configuration --------------------------------------------------------------------------------


# Each setting, the configuration field it sets, and a value other than the default.
SETTINGS = {
    "PLEO_API_BASE_URL": ("base_url", "https://external.staging.pleo.io"),
    "PLEO_CONNECT_TIMEOUT": ("connect_timeout", 2.5),
    "PLEO_READ_TIMEOUT": ("read_timeout", 12.0),
    "PLEO_MAX_ATTEMPTS": ("max_attempts", 6),
    "PLEO_BACKOFF_BASE": ("backoff_base", 0.1),
    "PLEO_BACKOFF_MAX": ("backoff_max", 4.0),
    "PLEO_RETRY_AFTER_CAP": ("retry_after_cap", 20.0),
    "PLEO_ITEMS_BATCH_SIZE": ("items_batch_size", 10),
    "PLEO_PAGE_SIZE": ("page_size", 50),
}


def test_config_from_settings(settings):
    for name, (_field, value) in SETTINGS.items():
        setattr(settings, name, value)
    config = ClientConfig.from_settings()
    assert config == ClientConfig(**dict(SETTINGS.values()))
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
    monkeypatch.setattr(os, "getpid", lambda: -1)
    assert pleo.shared_session("http://127.0.0.1:3") is not parent


@responses.activate
def test_shared_session_keeps_no_cookies_and_its_adapter_is_mounted_once(make_client):
    base = "http://localhost:7"  # a loopback host: plain http goes to no other
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
    monkeypatch.setattr(os, "getpid", lambda: -2)  # as in a fresh child: nothing cached yet
    proxied = pleo.shared_session("https://external.pleo.example")
    assert proxied.trust_env is False  # not re-read on every request
    assert proxied.proxies["https"] == "http://proxy.example:3128"
    assert proxied.verify == "/etc/ssl/company-ca.pem"
    bypassed = pleo.shared_session("https://internal.example")
    assert "https" not in bypassed.proxies
