"""OAuth 2.0, unit level: the HTTP module (``exports.pleo.oauth``, with ``responses``) and the
refresh rules of ``exports.services.oauth`` (marker, waiting, unknown outcomes, invalid_grant,
the client's 401 → refresh → retry), plus error reports without secrets."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from django.views.debug import ExceptionReporter
from responses import matchers

from exports import clock, crypto
from exports.models import Credential
from exports.pleo import PleoAuthError, PleoUnavailable
from exports.pleo import oauth as pleo_oauth
from exports.services import oauth as oauth_service
from exports.services import token_refresh
from exports.services.credentials import CredentialUnusable, pleo_client_for_credential
from tests import secrets_registry

AUTH = "https://auth.example.test"
API = "https://api.example.test"
TOKEN_URL = AUTH + "/oauth/token"
JOBS_URL = API + "/v3/export-jobs"
REDIRECT = "http://testserver/oauth/pleo/callback/"
EMPTY_PAGE = {"data": [], "pagination": {"hasNextPage": False, "hasPreviousPage": False}}


# --- Shared helpers (also used by test_oauth_connect and test_oauth_refresh) --------------------


def make_oauth_credential(
    *,
    client_id="bridge-client",
    client_secret=None,
    access_token=None,
    refresh_token=None,
    expires_in: float | None = 3600,
    api_base_url=API,
    name="OAuth credential",
    **extra,
) -> Credential:
    """An OAuth credential with stored (registered) tokens; ``None`` tokens: not connected."""
    credential = Credential(
        name=name,
        kind=Credential.Kind.OAUTH,
        oauth_client_id=client_id,
        api_base_url=api_base_url,
        **extra,
    )
    credential.oauth_client_secret = secrets_registry.register(
        client_secret or "ocs_unit_client_secret_9876"
    )
    if access_token:
        credential.access_token = secrets_registry.register(access_token)
    if refresh_token:
        credential.refresh_token = secrets_registry.register(refresh_token)
    if expires_in is not None:
        credential.access_token_expires_at = clock.now() + timedelta(seconds=expires_in)
    credential.save()
    return credential


def sandbox_oauth(sandbox, *, lifetime=3600, expired=False, redirect_uri=REDIRECT, scopes=None):
    """A sandbox company, OAuth client and token family, and a credential holding the tokens.
    ``expired``: the access token has expired, for the sandbox and for us."""
    state = sandbox.state
    company = state.add_company("OAuth ApS")
    client = state.add_oauth_client(
        redirect_uris=[redirect_uri], company_id=company.id, name="Bridge", scopes=scopes
    )
    state.set_switches(oauth_access_token_lifetime=lifetime)
    tokens = state.oauth_issue_tokens(client.client_id)
    credential = make_oauth_credential(
        client_id=client.client_id,
        client_secret=client.client_secret,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        expires_in=-10 if expired else lifetime,
        api_base_url=sandbox.url,
    )
    if expired:
        state.advance_clock(lifetime + 10)
    return SimpleNamespace(company=company, client=client, tokens=tokens, credential=credential)


def token_answer(access="at_new_0001_abcd", refresh="rt_new_0001_abcd", expires_in=3600):
    secrets_registry.register(access)
    secrets_registry.register(refresh)
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": "export-jobs:read",
    }


@pytest.fixture
def oauth_settings(settings):
    settings.PLEO_OAUTH_BASE_URL = AUTH
    settings.PUBLIC_BASE_URL = "http://testserver"
    settings.PLEO_OAUTH_REFRESH_MARGIN_SECONDS = 60
    return settings


def _config():
    return pleo_oauth.OAuthConfig(
        base_url=AUTH,
        client_id="cid",
        client_secret=secrets_registry.register("client-secret-unit-4242"),
    )


# --- exports.pleo.oauth ---------------------------------------------------------------------------


def test_pkce_known_answer_and_fresh_verifiers():
    # RFC 7636, appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pleo_oauth.code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    pairs = [pleo_oauth.new_pkce() for _ in range(20)]
    assert len({p.verifier for p in pairs}) == 20
    for pair in pairs:
        assert 43 <= len(pair.verifier) <= 128
        assert set(pair.verifier) <= pleo_oauth.VERIFIER_ALPHABET
        assert pair.challenge == pleo_oauth.code_challenge(pair.verifier)
        assert pair.verifier not in repr(pair)
    for bad in ("short", "x" * 129, "a" * 42 + "!"):
        with pytest.raises(ValueError):
            pleo_oauth.code_challenge(bad)
    with pytest.raises(ValueError):
        pleo_oauth.new_code_verifier(42)


def test_authorize_url():
    url = pleo_oauth.authorize_url(
        base_url=AUTH + "/",
        client_id="cid",
        redirect_uri=REDIRECT,
        scopes=["export-jobs:read", "export-items:read"],
        state="st",
        challenge="ch",
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == AUTH + "/oauth/authorize"
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == {
        "client_id": "cid",
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "export-jobs:read export-items:read",
        "state": "st",
        "code_challenge": "ch",
        "code_challenge_method": "S256",
    }


@responses.activate
def test_exchange_code_posts_the_form_with_tight_timeouts():
    secrets_registry.register("the-code-1234")
    secrets_registry.register("v" * 43)
    responses.post(
        TOKEN_URL,
        json=token_answer(),
        match=[
            matchers.urlencoded_params_matcher(
                {
                    "grant_type": "authorization_code",
                    "code": "the-code-1234",
                    "redirect_uri": REDIRECT,
                    "code_verifier": "v" * 43,
                    "client_id": "cid",
                    "client_secret": "client-secret-unit-4242",
                }
            )
        ],
    )
    tokens = pleo_oauth.exchange_code(
        _config(), code="the-code-1234", redirect_uri=REDIRECT, code_verifier="v" * 43
    )
    assert tokens.access_token == "at_new_0001_abcd"
    assert tokens.refresh_token == "rt_new_0001_abcd"
    assert tokens.expires_in == 3600
    assert "at_new" not in repr(tokens) and "rt_new" not in repr(tokens)
    assert "client-secret" not in repr(_config())
    call = responses.calls[0]
    assert call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert call.request.req_kwargs["timeout"] == (3.0, 10.0)


@pytest.mark.parametrize(
    "answer, error_class, error",
    [
        (dict(status=400, json={"error": "invalid_grant"}), pleo_oauth.OAuthInvalidGrant, None),
        (
            dict(status=401, json={"error": "invalid_client", "error_description": "bad"}),
            pleo_oauth.OAuthError,
            "invalid_client",
        ),
        (dict(status=400, json={"error": "invalid_request"}), pleo_oauth.OAuthError, None),
        (dict(status=500, body="oops"), pleo_oauth.OAuthOutcomeUnknown, None),
        (dict(status=503, json={"error": "x"}), pleo_oauth.OAuthOutcomeUnknown, None),
        (dict(status=429, json={}), pleo_oauth.OAuthUnavailable, None),
        (dict(status=200, body="not json"), pleo_oauth.OAuthOutcomeUnknown, None),
        (dict(status=200, json={"access_token": "a"}), pleo_oauth.OAuthOutcomeUnknown, None),
        (
            dict(status=200, json={**token_answer(), "expires_in": -1}),
            pleo_oauth.OAuthOutcomeUnknown,
            None,
        ),
        (
            dict(status=200, json={**token_answer(), "token_type": "mac"}),
            pleo_oauth.OAuthOutcomeUnknown,
            None,
        ),
        (dict(body=requests.exceptions.ReadTimeout()), pleo_oauth.OAuthOutcomeUnknown, None),
        (
            dict(body=requests.exceptions.ChunkedEncodingError()),
            pleo_oauth.OAuthOutcomeUnknown,
            None,
        ),
        (dict(body=requests.exceptions.ConnectTimeout()), pleo_oauth.OAuthUnavailable, None),
    ],
)
@responses.activate
def test_token_errors_are_typed(answer, error_class, error):
    secrets_registry.register("rt_presented_5555")
    responses.post(TOKEN_URL, **answer)
    with pytest.raises(pleo_oauth.OAuthError) as caught:
        pleo_oauth.refresh_tokens(_config(), refresh_token="rt_presented_5555")
    assert type(caught.value) is error_class
    if error:
        assert caught.value.error == error
    assert "rt_presented" not in str(caught.value) and "client-secret" not in str(caught.value)
    # No traceback (whose frames hold the request body) is chained to the error.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__
    assert len(responses.calls) == 1  # never retried


def test_connection_refused_is_unavailable():
    config = pleo_oauth.OAuthConfig(base_url="http://127.0.0.1:9", client_id="c", client_secret="s")
    with pytest.raises(pleo_oauth.OAuthUnavailable):
        pleo_oauth.refresh_tokens(config, refresh_token="rt")


# --- exports.services.oauth: refresh --------------------------------------------------------------

pytestmark_db = pytest.mark.django_db


@pytestmark_db
@responses.activate
def test_fresh_token_is_used_without_any_refresh(oauth_settings):
    credential = make_oauth_credential(access_token="at_fresh_1111", refresh_token="rt_1111")
    assert oauth_service.oauth_access_token(credential_id=credential.pk) == "at_fresh_1111"
    assert len(responses.calls) == 0


@pytestmark_db
@responses.activate
def test_token_near_expiry_is_refreshed_and_both_tokens_stored_encrypted(oauth_settings):
    credential = make_oauth_credential(
        access_token="at_old_2222", refresh_token="rt_old_2222", expires_in=30
    )
    responses.post(
        TOKEN_URL,
        json=token_answer("at_new_2222", "rt_new_2222", 1800),
        match=[
            matchers.urlencoded_params_matcher(
                {
                    "grant_type": "refresh_token",
                    "refresh_token": "rt_old_2222",
                    "client_id": "bridge-client",
                    "client_secret": "ocs_unit_client_secret_9876",
                }
            )
        ],
    )
    before = clock.now()
    assert oauth_service.oauth_access_token(credential_id=credential.pk) == "at_new_2222"
    credential.refresh_from_db()
    assert credential.access_token == "at_new_2222"
    assert credential.refresh_token == "rt_new_2222"
    assert "at_new" not in credential.access_token_ciphertext
    assert credential.refreshing_until is None
    assert credential.status == Credential.Status.OK
    expires = credential.access_token_expires_at
    assert before + timedelta(seconds=1799) <= expires <= clock.now() + timedelta(seconds=1800)
    # Fresh now: no further refresh.
    assert oauth_service.oauth_access_token(credential_id=credential.pk) == "at_new_2222"
    assert len(responses.calls) == 1


@pytestmark_db
@responses.activate
def test_margin_is_a_setting(oauth_settings):
    credential = make_oauth_credential(
        access_token="at_3333", refresh_token="rt_3333", expires_in=90
    )
    assert oauth_service.oauth_access_token(credential_id=credential.pk) == "at_3333"
    oauth_settings.PLEO_OAUTH_REFRESH_MARGIN_SECONDS = 120
    responses.post(TOKEN_URL, json=token_answer("at_new_3333", "rt_new_3333"))
    assert oauth_service.oauth_access_token(credential_id=credential.pk) == "at_new_3333"


@pytestmark_db
@responses.activate
def test_invalid_grant_needs_reauthorisation_and_no_further_calls(oauth_settings):
    credential = make_oauth_credential(
        access_token="at_4444", refresh_token="rt_4444", expires_in=-5
    )
    responses.post(
        TOKEN_URL,
        status=400,
        json={"error": "invalid_grant", "error_description": "Refresh token was revoked."},
    )
    with pytest.raises(CredentialUnusable, match="needs re-authorisation"):
        oauth_service.oauth_access_token(credential_id=credential.pk)
    credential.refresh_from_db()
    assert credential.status == Credential.Status.NEEDS_REAUTHORISATION
    assert "Refresh token was revoked" in credential.last_error
    assert credential.refreshing_until is None and credential.status_changed_at is not None
    with pytest.raises(CredentialUnusable, match="Reconnect to Pleo"):
        pleo_client_for_credential(credential=credential, run_id=None)
    with pytest.raises(CredentialUnusable):
        oauth_service.oauth_access_token(credential_id=credential.pk)
    assert len(responses.calls) == 1


@pytestmark_db
@pytest.mark.parametrize(
    "failure",
    [
        dict(body=requests.exceptions.ReadTimeout()),
        dict(body=requests.exceptions.ConnectionError("Connection aborted.")),
        dict(status=502, body="bad gateway"),
    ],
)
@responses.activate
def test_unknown_outcome_is_never_retried_and_needs_reauthorisation(oauth_settings, failure):
    credential = make_oauth_credential(
        access_token="at_5555", refresh_token="rt_5555", expires_in=-5
    )
    responses.post(TOKEN_URL, **failure)
    with pytest.raises(CredentialUnusable, match="unknown outcome"):
        oauth_service.oauth_access_token(credential_id=credential.pk)
    credential.refresh_from_db()
    assert credential.status == Credential.Status.NEEDS_REAUTHORISATION
    assert "not presented again" in credential.last_error
    assert credential.refreshing_until is None
    assert credential.refresh_token == "rt_5555"
    with pytest.raises(CredentialUnusable):
        oauth_service.oauth_access_token(credential_id=credential.pk)
    assert len(responses.calls) == 1


def reconnect(credential, suffix: str) -> None:
    """The admin reconnects ``credential`` (new tokens ``at_/rt_reconnected_<suffix>``), as
    another process would while our refresh is on the wire."""
    row = Credential.objects.get(pk=credential.pk)
    row.access_token = secrets_registry.register(f"at_reconnected_{suffix}")
    row.refresh_token = secrets_registry.register(f"rt_reconnected_{suffix}")
    row.access_token_expires_at = clock.now() + timedelta(hours=1)
    row.save()


@pytestmark_db
@responses.activate
def test_unknown_outcome_but_a_new_token_arrived_meanwhile_uses_it(oauth_settings):
    credential = make_oauth_credential(
        access_token="at_6666", refresh_token="rt_6666", expires_in=-5
    )

    def reconnected_during_the_call(request):
        reconnect(credential, "6666")
        raise requests.exceptions.ReadTimeout()

    responses.add_callback(responses.POST, TOKEN_URL, callback=reconnected_during_the_call)
    assert oauth_service.oauth_access_token(credential_id=credential.pk) == "at_reconnected_6666"
    credential.refresh_from_db()
    assert credential.status == Credential.Status.OK and credential.refreshing_until is None


@pytestmark_db
@responses.activate
def test_refreshed_tokens_do_not_overwrite_a_reconnect(oauth_settings):
    credential = make_oauth_credential(
        access_token="at_7777", refresh_token="rt_7777", expires_in=-5
    )

    def reconnected_then_answered(request):
        reconnect(credential, "7777")
        return 200, {}, json.dumps(token_answer("at_late_7777", "rt_late_7777"))

    responses.add_callback(responses.POST, TOKEN_URL, callback=reconnected_then_answered)
    assert oauth_service.oauth_access_token(credential_id=credential.pk) == "at_reconnected_7777"
    credential.refresh_from_db()
    assert credential.refresh_token == "rt_reconnected_7777"


@pytestmark_db
@responses.activate
def test_unreachable_refresh_releases_the_marker_and_changes_nothing(oauth_settings):
    credential = make_oauth_credential(
        access_token="at_8888", refresh_token="rt_8888", expires_in=-5
    )
    responses.post(TOKEN_URL, body=requests.exceptions.ConnectTimeout())
    with pytest.raises(PleoUnavailable, match="token refresh failed"):
        oauth_service.oauth_access_token(credential_id=credential.pk)
    credential.refresh_from_db()
    assert credential.status == Credential.Status.OK and credential.refreshing_until is None
    # Presenting the same refresh token again is safe: it never reached Pleo.
    responses.replace(responses.POST, TOKEN_URL, json=token_answer("at_new_8888", "rt_new_8888"))
    assert oauth_service.oauth_access_token(credential_id=credential.pk) == "at_new_8888"


@pytestmark_db
@responses.activate
def test_unreachable_refresh_within_the_margin_keeps_using_the_valid_token(oauth_settings):
    credential = make_oauth_credential(
        access_token="at_8811", refresh_token="rt_8811", expires_in=30
    )
    responses.post(TOKEN_URL, status=429, json={})
    assert oauth_service.oauth_access_token(credential_id=credential.pk) == "at_8811"
    credential.refresh_from_db()
    assert credential.status == Credential.Status.OK and credential.refreshing_until is None
    assert len(responses.calls) == 1


@pytestmark_db
@responses.activate
def test_invalid_client_is_reported_without_changing_the_status(oauth_settings):
    credential = make_oauth_credential(
        access_token="at_8899", refresh_token="rt_8899", expires_in=-5
    )
    responses.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
    with pytest.raises(PleoAuthError, match="invalid_client"):
        oauth_service.oauth_access_token(credential_id=credential.pk)
    credential.refresh_from_db()
    assert credential.status == Credential.Status.OK and credential.refreshing_until is None


@pytestmark_db
@responses.activate
def test_waiting_caller_uses_the_token_another_process_stored(oauth_settings, monkeypatch):
    credential = make_oauth_credential(
        access_token="at_9999", refresh_token="rt_9999", expires_in=-5
    )
    until = clock.now() + timedelta(seconds=20)
    Credential.objects.filter(pk=credential.pk).update(refreshing_until=until)
    sleeps = []

    def other_process_finishes(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 3:  # the holder stores its tokens while we wait
            row = Credential.objects.get(pk=credential.pk)
            row.access_token = secrets_registry.register("at_other_9999")
            row.refresh_token = secrets_registry.register("rt_other_9999")
            row.access_token_expires_at = clock.now() + timedelta(hours=1)
            row.refreshing_until = None
            row.save()

    monkeypatch.setattr(token_refresh.time, "sleep", other_process_finishes)
    assert oauth_service.oauth_access_token(credential_id=credential.pk) == "at_other_9999"
    assert len(sleeps) == 3 and all(s <= token_refresh.POLL_MAX_SECONDS for s in sleeps)
    assert len(responses.calls) == 0


@pytestmark_db
@responses.activate
def test_marker_past_its_deadline_is_an_unknown_outcome_not_a_retry(oauth_settings, monkeypatch):
    credential = make_oauth_credential(
        access_token="at_1010", refresh_token="rt_1010", expires_in=-5
    )
    Credential.objects.filter(pk=credential.pk).update(
        refreshing_until=clock.now() + timedelta(seconds=2)
    )
    monkeypatch.setattr(token_refresh.time, "sleep", lambda s: clock.advance(1))
    with pytest.raises(CredentialUnusable, match="never finished"):
        oauth_service.oauth_access_token(credential_id=credential.pk)
    credential.refresh_from_db()
    assert credential.status == Credential.Status.NEEDS_REAUTHORISATION
    assert credential.refreshing_until is None
    assert len(responses.calls) == 0


@pytestmark_db
@responses.activate
def test_not_connected_oauth_credential_is_unusable(oauth_settings):
    credential = make_oauth_credential(expires_in=None)
    with pytest.raises(CredentialUnusable, match="not connected yet"):
        pleo_client_for_credential(credential=credential, run_id=None)


# --- The client: 401 → one refresh → one retry ----------------------------------------------------


@pytestmark_db
@responses.activate
def test_401_refreshes_once_and_retries_once(oauth_settings):
    credential = make_oauth_credential(access_token="at_a_1212", refresh_token="rt_a_1212")
    responses.get(
        JOBS_URL,
        status=401,
        json={"type": "UNAUTHORIZED", "message": "no"},
        match=[matchers.header_matcher({"Authorization": "Bearer at_a_1212"})],
    )
    responses.get(
        JOBS_URL,
        json=EMPTY_PAGE,
        match=[matchers.header_matcher({"Authorization": "Bearer at_b_1212"})],
    )
    responses.post(TOKEN_URL, json=token_answer("at_b_1212", "rt_b_1212"))
    with pleo_client_for_credential(credential=credential, run_id=None) as client:
        assert client.list_export_jobs() == []
        assert client.list_export_jobs() == []  # the new token, no refresh
    assert [c.request.method for c in responses.calls] == ["GET", "POST", "GET", "GET"]
    credential.refresh_from_db()
    assert credential.status == Credential.Status.OK


@pytestmark_db
@responses.activate
def test_second_401_after_a_refresh_needs_reauthorisation(oauth_settings):
    credential = make_oauth_credential(access_token="at_a_1313", refresh_token="rt_a_1313")
    responses.get(JOBS_URL, status=401, json={"type": "UNAUTHORIZED", "message": "no"})
    responses.post(TOKEN_URL, json=token_answer("at_b_1313", "rt_b_1313"))
    with pleo_client_for_credential(credential=credential, run_id=None) as client:
        with pytest.raises(PleoAuthError):
            client.list_export_jobs()
        with pytest.raises(PleoAuthError, match="not sent"):
            client.list_export_jobs()
    assert [c.request.method for c in responses.calls] == ["GET", "POST", "GET"]
    credential.refresh_from_db()
    assert credential.status == Credential.Status.NEEDS_REAUTHORISATION
    assert "freshly refreshed" in credential.last_error


@pytestmark_db
@responses.activate
def test_403_changes_nothing_for_oauth(oauth_settings):
    credential = make_oauth_credential(access_token="at_1414", refresh_token="rt_1414")
    responses.get(JOBS_URL, status=403, json={"type": "FORBIDDEN", "message": "scope"})
    with pleo_client_for_credential(credential=credential, run_id=None) as client:
        with pytest.raises(PleoAuthError):
            client.list_export_jobs()
    credential.refresh_from_db()
    assert credential.status == Credential.Status.OK
    assert len(responses.calls) == 1


@pytestmark_db
@responses.activate
def test_invalid_grant_during_a_call_raises_credential_unusable_before_sending(oauth_settings):
    credential = make_oauth_credential(
        access_token="at_1515", refresh_token="rt_1515", expires_in=10
    )
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_grant"})
    with pleo_client_for_credential(credential=credential, run_id=None) as client:
        with pytest.raises(CredentialUnusable):
            client.list_export_jobs()
    assert [c.request.url for c in responses.calls] == [TOKEN_URL]


# --- No secret in error reports -------------------------------------------------------------------


@pytestmark_db
@responses.activate
def test_error_report_of_a_failed_refresh_shows_no_token_or_secret(oauth_settings, monkeypatch, rf):
    oauth_settings.DEBUG = False  # Django filters sensitive variables only when DEBUG is off
    credential = make_oauth_credential(
        client_secret="ocs_report_secret_7171",
        access_token="at_report_7171",
        refresh_token="rt_report_7171",
        expires_in=-5,
    )
    responses.post(TOKEN_URL, json=token_answer("at_report_new_7171", "rt_report_new_7171"))

    def broken_store(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(token_refresh, "_store_refreshed", broken_store)
    request = rf.get("/admin/")
    try:
        oauth_service.oauth_access_token(credential_id=credential.pk)
    except RuntimeError:
        report = ExceptionReporter(request, *sys.exc_info()).get_traceback_text()
    else:
        pytest.fail("the refresh should have failed")
    assert "_refresh_holding_marker" in report  # the frames are there, their secrets are not
    for secret in ("rt_report_7171", "at_report_new_7171", "rt_report_new_7171"):
        assert secret not in report
    assert "ocs_report_secret_7171" not in report
    assert crypto.decrypt(Credential.objects.get(pk=credential.pk).refresh_token_ciphertext)
