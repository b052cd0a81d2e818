"""OAuth 2.0 token refresh, unit level: the rules of ``exports.services.oauth`` and
``exports.services.token_refresh`` (marker, waiting, unknown outcomes, invalid_grant), the
client's 401 → refresh → retry, and error reports without secrets. Pleo's token endpoint is
``responses``, active for every test here.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import pytest
import requests
import responses
from django.views.debug import ExceptionReporter
from responses import matchers

from exports import clock, crypto
from exports.models import Credential
from exports.pleo import PleoAuthError, PleoUnavailable
from exports.services import oauth as oauth_service
from exports.services import token_refresh
from exports.services.credentials import CredentialUnusable, pleo_client_for_credential
from tests import oauth_support, secrets_registry
from tests.oauth_support import EMPTY_PAGE, JOBS_URL, TOKEN_URL, make_oauth_credential, token_answer

pytestmark = pytest.mark.django_db

oauth_settings = oauth_support.oauth_settings  # a fixture


@pytest.fixture(autouse=True)
def _token_endpoint():
    """Every request goes to ``responses`` (as ``@responses.activate`` would)."""
    with responses.mock:
        yield


# --- exports.services.oauth: refresh --------------------------------------------------------------


def test_fresh_token_is_used_without_any_refresh(oauth_settings):
    credential = make_oauth_credential(access_token="at_fresh_1111", refresh_token="rt_1111")
    assert oauth_service.oauth_access_token(credential_id=credential.pk) == "at_fresh_1111"
    assert len(responses.calls) == 0


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


def test_margin_is_a_setting(oauth_settings):
    credential = make_oauth_credential(
        access_token="at_3333", refresh_token="rt_3333", expires_in=90
    )
    assert oauth_service.oauth_access_token(credential_id=credential.pk) == "at_3333"
    oauth_settings.PLEO_OAUTH_REFRESH_MARGIN_SECONDS = 120
    responses.post(TOKEN_URL, json=token_answer("at_new_3333", "rt_new_3333"))
    assert oauth_service.oauth_access_token(credential_id=credential.pk) == "at_new_3333"


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


@pytest.mark.parametrize(
    "failure",
    [
        dict(body=requests.exceptions.ReadTimeout()),
        dict(body=requests.exceptions.ConnectionError("Connection aborted.")),
        dict(status=502, body="bad gateway"),
    ],
)
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


def test_unreachable_refresh_within_the_margin_keeps_using_the_valid_token(oauth_settings):
    credential = make_oauth_credential(
        access_token="at_8811", refresh_token="rt_8811", expires_in=30
    )
    responses.post(TOKEN_URL, status=429, json={})
    assert oauth_service.oauth_access_token(credential_id=credential.pk) == "at_8811"
    credential.refresh_from_db()
    assert credential.status == Credential.Status.OK and credential.refreshing_until is None
    assert len(responses.calls) == 1


def test_invalid_client_is_reported_without_changing_the_status(oauth_settings):
    credential = make_oauth_credential(
        access_token="at_8899", refresh_token="rt_8899", expires_in=-5
    )
    responses.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
    with pytest.raises(PleoAuthError, match="invalid_client"):
        oauth_service.oauth_access_token(credential_id=credential.pk)
    credential.refresh_from_db()
    assert credential.status == Credential.Status.OK and credential.refreshing_until is None


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


def test_not_connected_oauth_credential_is_unusable(oauth_settings):
    credential = make_oauth_credential(expires_in=None)
    with pytest.raises(CredentialUnusable, match="not connected yet"):
        pleo_client_for_credential(credential=credential, run_id=None)


# --- The client: 401 → one refresh → one retry ----------------------------------------------------


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


def test_403_changes_nothing_for_oauth(oauth_settings):
    credential = make_oauth_credential(access_token="at_1414", refresh_token="rt_1414")
    responses.get(JOBS_URL, status=403, json={"type": "FORBIDDEN", "message": "scope"})
    with pleo_client_for_credential(credential=credential, run_id=None) as client:
        with pytest.raises(PleoAuthError):
            client.list_export_jobs()
    credential.refresh_from_db()
    assert credential.status == Credential.Status.OK
    assert len(responses.calls) == 1


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
