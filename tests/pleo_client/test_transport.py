"""exports.pleo.transport: the retry and idempotency rules, backoff and ``Retry-After``, logging,
the ``before_request`` hook (the request budget), and the same rules over real local sockets where
the transport's own behaviour matters (connection refused, read timeout, dropped connection). No
test sleeps: the client's ``sleep`` is a list's ``append``."""

from __future__ import annotations

import base64
import contextlib
import email.utils
import json
import logging
import re
import uuid
from datetime import timedelta

import pytest
import requests
import responses
from urllib3.exceptions import ConnectTimeoutError

from exports import pleo
from exports.pleo import (
    ApiKeyAuth,
    BearerAuth,
    ClientConfig,
    JobEvent,
    PleoClient,
    PleoError,
    PleoHostNotAllowed,
    PleoHTTPError,
    PleoOutcomeUnknown,
    PleoRateLimited,
    PleoServerError,
    PleoUnavailable,
    transport,
)
from tests import client_fakes as fakes
from tests import secrets_registry
from tests.client_fakes import (
    EVENTS,
    ITEMS,
    JOB,
    NOW,
    SUBSCRIPTION,
    SUBSCRIPTIONS,
    URL,
    post_event,
    put_items,
)

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


def _create_subscription(client):
    client.create_subscription("https://bridge.example/hook", ["v1.export-job.created"])


def _delete_subscription(client):
    client.delete_subscription(fakes.SUBSCRIPTION_ID)


WRITES = {
    "POST event": (responses.POST, EVENTS, post_event, {"status": 202}),
    "PUT items": (responses.PUT, ITEMS, put_items, {"json": {"data": [], "errors": []}}),
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
        post_event(client)
    assert len(http.calls) == 4
    assert len(sleeps) == 3


@pytest.mark.parametrize("status", [400, 403, 404, 409, 413, 422])
def test_write_is_never_retried_on_4xx(http, client, sleeps, status):
    http.post(EVENTS, status=status, json={"type": "X", "message": "no"})
    with pytest.raises(PleoHTTPError):
        post_event(client)
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
    assert transport.provably_not_sent(make_exc()) is expected


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
            lambda: requests.exceptions.ConnectionError(ConnectTimeoutError(None, "timed out")),
            "connect timeout (ConnectTimeoutError)",
        ),
        (lambda: requests.exceptions.SSLError("bad handshake"), "TLS error (SSLError)"),
        (lambda: requests.exceptions.ConnectionError("boom"), "connection error (ConnectionError)"),
        (lambda: requests.exceptions.InvalidURL("bad"), "request error (InvalidURL)"),
    ],
)
def test_transport_failures_are_described_without_urls(make_exc, description):
    assert transport.describe_transport_failure(make_exc()) == description


def test_read_phase_evidence_beats_a_connect_error_in_the_chain():
    exc = fakes.refused()
    exc.__context__ = fakes.dropped().args[0]
    assert transport.provably_not_sent(exc) is False


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
        post_event(client) if write else client.get_export_job(fakes.JOB_ID)
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
    caplog.set_level(logging.DEBUG, logger="exports.pleo.transport")
    http.get(JOB, status=503)
    http.get(JOB, body=fakes.read_timeout())
    http.get(JOB, json={"data": fakes.job_json()})
    client.get_export_job(fakes.JOB_ID)
    records = [r for r in caplog.records if r.name == "exports.pleo.transport"]
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
        lambda: post_event(bearer_client),
        lambda: post_event(key_client),
        lambda: put_items(make_client()),
    ):
        with pytest.raises(PleoError) as caught:
            action()
        errors.append(caught.value)
    text = caplog.text + " ".join(f"{e!s} {e!r}" for e in errors)
    assert "Pleo GET" in caplog.text  # the logs were captured
    for value in (api_key, encoded_key, token, secret):
        assert value not in text


# --- Real sockets ---------------------------------------------------------------------------------


@pytest.fixture
def plain_session():
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment between us and 127.0.0.1
    yield session
    session.close()


@pytest.fixture
def real_server(make_client, plain_session):
    """``with real_server(behaviour, **config) as (server, client)``: a raw HTTP server on a real
    socket answering with ``behaviour`` (``tests.client_fakes``), and a client of it."""

    @contextlib.contextmanager
    def start(behaviour, **config):
        with fakes.RawServer(behaviour) as server:
            yield server, make_client(base_url=server.url, session=plain_session, **config)

    return start


def test_real_connection_refused_on_post_is_retried(make_client, plain_session, sleeps):
    client = make_client(
        base_url=f"http://127.0.0.1:{fakes.closed_port()}", session=plain_session, connect_timeout=2
    )
    with pytest.raises(PleoUnavailable, match="could not connect"):
        post_event(client)
    assert len(sleeps) == 3


# The failure as the client's error words it, and the raw server that makes it happen.
SOCKET_FAILURES = {"read timeout": fakes.silent, "connection dropped": fakes.hang_up}


@pytest.mark.parametrize(
    ("failure", "config", "method", "error", "requests", "pauses"),
    [
        # A POST that may have had its effect is never sent again: its outcome is unknown.
        ("read timeout", {"read_timeout": 0.3}, "POST", PleoOutcomeUnknown, 1, 0),
        ("connection dropped", {"max_attempts": 2}, "POST", PleoOutcomeUnknown, 1, 0),
        # A GET is retried up to max_attempts, with a pause between attempts.
        ("read timeout", {"read_timeout": 0.2, "max_attempts": 3}, "GET", PleoUnavailable, 3, 2),
        ("connection dropped", {"max_attempts": 2}, "GET", PleoUnavailable, 2, 1),
    ],
)
def test_real_socket_failures(
    real_server, sleeps, failure, config, method, error, requests, pauses
):
    with real_server(SOCKET_FAILURES[failure], **config) as (server, client):
        with pytest.raises(error, match=failure):
            post_event(client) if method == "POST" else client.get_export_job(fakes.JOB_ID)
        assert len(server.requests) == requests
    assert len(sleeps) == pauses


def test_real_bytes_on_the_wire(real_server, caplog):
    caplog.set_level(logging.DEBUG)
    wire = real_server(
        fakes.answer(202, None), auth=ApiKeyAuth("my-api-key"), request_id="run-wire"
    )
    with wire as (server, client):
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


# --- The host check (exports.pleo.hosts; the whole matrix is in tests/test_pleo_hosts.py) --------


def test_a_host_off_the_allow_list_is_refused_before_a_credential_is_read(http, make_client):
    tokens_read = []
    client = make_client(
        base_url="https://collector.evil.example",
        auth=BearerAuth(lambda: tokens_read.append(1) or "at_never_read"),
    )
    with pytest.raises(PleoHostNotAllowed, match="not a Pleo host") as refused:
        client.get_export_job(fakes.JOB_ID)
    assert (refused.value.method, refused.value.path) == ("GET", f"/v3/export-jobs/{fakes.JOB_ID}")
    assert tokens_read == [] and len(http.calls) == 0
