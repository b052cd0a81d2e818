"""Token refresh against the sandbox's real OAuth server: one refresh in flight across processes,
a reused refresh token, a dropped refresh answer, and no token or secret in any log or page.

The sandbox's request log is the witness: it counts every ``POST /oauth/token`` and every API call
and says which access token each call carried (``identity``, never the token itself).
"""

from __future__ import annotations

import json
import sys
import time
import uuid

import pytest
import requests
from django.contrib.auth.models import User
from django.urls import reverse

from exports.models import AuditEntry, Company, Credential, Trigger
from exports.pleo import PleoAuthError
from exports.services.credentials import CredentialUnusable, pleo_client_for_credential
from exports.services.start_flow import company_check_run
from tests import processes, secrets_registry
from tests.oauth_support import sandbox_oauth

CALLERS = 20

CALLER = r"""
import json, pathlib, sys, time
import django
django.setup()
from django.db import connection
from exports.models import Credential
from exports.services.credentials import pleo_client_for_credential

credential_id, company_id, sync, index = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
sync = pathlib.Path(sync)
credential = Credential.objects.get(pk=credential_id)
connection.ensure_connection()
(sync / f"ready-{index}").touch()
deadline = time.monotonic() + 60
while not (sync / "go").exists():
    if time.monotonic() > deadline:
        sys.exit("no go signal")
    time.sleep(0.002)
try:
    with pleo_client_for_credential(credential=credential, run_id=None) as client:
        jobs = client.list_export_jobs(company_id=company_id)
    print("RESULT " + json.dumps({"ok": True, "jobs": len(jobs)}), flush=True)
except Exception as exc:
    print("RESULT " + json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
    sys.exit(1)
"""


@pytest.fixture
def oauth_sandbox(pleo_sandbox, settings):
    settings.PLEO_OAUTH_BASE_URL = pleo_sandbox.url
    return pleo_sandbox


def _settled(state) -> list[dict]:
    """The request log once every request is finished (the client may read its answer before
    the sandbox's handler has logged the outcome)."""
    return state.request_log.wait_for(lambda log: all(e["complete"] for e in log), timeout=5)


def _token_requests(state):
    return [e for e in _settled(state) if (e["method"], e["path"]) == ("POST", "/oauth/token")]


def _api_requests(state):
    return [e for e in _settled(state) if e["path"].startswith("/v3/")]


def _register_stored_tokens(credential_id):
    credential = Credential.objects.get(pk=credential_id)
    secrets_registry.register(credential.access_token)
    secrets_registry.register(credential.refresh_token)
    return credential


@pytest.mark.slow  # a multi-process proof (about 10 s): .ci/run runs it
@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_twenty_processes_with_an_expired_token_make_exactly_one_refresh(
    oauth_sandbox, product_env, tmp_path
):
    state = oauth_sandbox.state
    setup = sandbox_oauth(oauth_sandbox, lifetime=600, expired=True)
    state.create_job(setup.company.id, items=1, notify=False)
    old_identity = next(
        c.identity for c in state.credentials() if c.secret == setup.tokens["access_token"]
    )
    env = {**product_env, "PLEO_OAUTH_BASE_URL": oauth_sandbox.url, "LOG_LEVEL": "DEBUG"}
    sync = tmp_path / "sync"
    sync.mkdir()
    started = time.monotonic()
    callers = [
        processes.start(
            [
                sys.executable,
                "-c",
                CALLER,
                str(setup.credential.pk),
                setup.company.id,
                str(sync),
                str(i),
            ],
            env,
            tmp_path / f"caller-{i}.log",
        )
        for i in range(CALLERS)
    ]
    try:
        processes.wait_until(
            lambda: (
                len(list(sync.glob("ready-*"))) == CALLERS
                or any(p.poll() is not None for p in callers)
            ),
            timeout=60,
            interval=0.05,
            message="every caller ready",
        )
        (sync / "go").touch()
        for process in callers:
            process.wait(timeout=60)
    finally:
        for process in callers:
            processes.stop(process)
    outputs = [processes.output(p) for p in callers]
    stored = _register_stored_tokens(setup.credential.pk)
    for out in outputs:
        assert '"ok": true' in out, out[-3000:]
        for secret in secrets_registry.current():
            assert secret not in out, "a token or secret reached a caller's log"

    token_calls = _token_requests(state)
    assert len(token_calls) == 1, [e["outcome"] for e in token_calls]
    assert token_calls[0]["status"] == 200
    api_calls = _api_requests(state)
    assert len(api_calls) == CALLERS
    assert {e["status"] for e in api_calls} == {200}
    identities = {e["identity"] for e in api_calls}
    assert len(identities) == 1 and old_identity not in identities
    # Every call carried the one new token, which is what we stored.
    new_identity = next(c.identity for c in state.credentials() if c.secret == stored.access_token)
    assert identities == {new_identity}
    assert stored.status == Credential.Status.OK and stored.refreshing_until is None
    assert state.oauth_refresh_token_status(stored.refresh_token) == "active"
    assert state.oauth_refresh_token_status(setup.tokens["refresh_token"]) == "rotated"
    assert time.monotonic() - started < 60


@pytest.mark.django_db(transaction=True)
def test_reused_refresh_token_needs_reauthorisation_and_makes_no_api_call(oauth_sandbox):
    state = oauth_sandbox.state
    setup = sandbox_oauth(oauth_sandbox, lifetime=600, expired=True)
    # Someone else (a copy of the database, say) already used the stored refresh token.
    rotated = requests.post(
        f"{oauth_sandbox.url}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": setup.tokens["refresh_token"],
            "client_id": setup.client.client_id,
            "client_secret": setup.client.client_secret,
        },
        timeout=5,
    ).json()
    secrets_registry.register(rotated["access_token"])
    secrets_registry.register(rotated["refresh_token"])
    state.clear_requests()

    company = Company.objects.create(
        name="OAuth ApS", pleo_company_id=uuid.UUID(setup.company.id), credential=setup.credential
    )
    result = company_check_run(company=company, trigger=Trigger.MANUAL)
    assert result.outcome == "failed"
    assert "needs re-authorisation" in result.error and "revoked" in result.error

    credential = Credential.objects.get(pk=setup.credential.pk)
    assert credential.status == Credential.Status.NEEDS_REAUTHORISATION
    assert "Pleo refused the refresh token" in credential.last_error
    # The run recorded why.
    entry = AuditEntry.objects.filter(company=company, step="error").get()
    assert "needs re-authorisation" in entry.message
    # Exactly one token request (ours, the reuse), and no API call at all, now or later.
    assert len(_token_requests(state)) == 1
    (grant,) = state.oauth_grants()
    assert grant["revoked"]
    with pytest.raises(CredentialUnusable, match="needs re-authorisation"):
        pleo_client_for_credential(credential=credential, run_id=None)
    second = company_check_run(company=company, trigger=Trigger.MANUAL)
    assert second.outcome == "failed"
    assert len(_token_requests(state)) == 1
    assert _api_requests(state) == []


@pytest.mark.django_db(transaction=True)
def test_dropped_refresh_answer_is_not_retried_and_does_not_revoke_the_family(oauth_sandbox):
    state = oauth_sandbox.state
    setup = sandbox_oauth(oauth_sandbox, lifetime=600, expired=True)
    state.add_fault(
        "apply_then_drop", "POST", "/oauth/token", body_match={"grant_type": "refresh_token"}
    )
    credential = Credential.objects.get(pk=setup.credential.pk)
    with pleo_client_for_credential(credential=credential, run_id=None) as client:
        with pytest.raises(CredentialUnusable, match="unknown outcome"):
            client.list_export_jobs()
        with pytest.raises(CredentialUnusable):
            client.list_export_jobs()
    with pytest.raises(CredentialUnusable):
        pleo_client_for_credential(credential=Credential.objects.get(pk=credential.pk), run_id=None)

    (token_call,) = _token_requests(state)
    assert token_call["outcome"] == "dropped"
    assert _api_requests(state) == []
    credential.refresh_from_db()
    assert credential.status == Credential.Status.NEEDS_REAUTHORISATION
    assert "not presented again" in credential.last_error
    assert credential.refreshing_until is None
    # Pleo rotated the token and we never saw the new pair, but the family is intact: the old
    # refresh token was not presented again.
    (grant,) = state.oauth_grants()
    assert not grant["revoked"]
    assert [t["status"] for t in grant["refreshTokens"]] == ["rotated", "active"]


@pytest.mark.django_db(transaction=True)
def test_401_refreshes_once_retries_once_and_a_second_401_needs_reauthorisation(oauth_sandbox):
    state = oauth_sandbox.state
    setup = sandbox_oauth(oauth_sandbox, lifetime=600)
    # Pleo stops accepting the (unexpired) access token: one refresh, one retry, success.
    (old,) = [c for c in state.credentials() if c.secret == setup.tokens["access_token"]]
    state.revoke(old.id)
    credential = Credential.objects.get(pk=setup.credential.pk)
    with pleo_client_for_credential(credential=credential, run_id=None) as client:
        client.list_export_jobs()
    _register_stored_tokens(credential.pk)
    api = _api_requests(state)
    assert [e["status"] for e in api] == [401, 200]
    assert len(_token_requests(state)) == 1
    credential.refresh_from_db()
    assert credential.status == Credential.Status.OK

    # A 401 that a refresh does not cure: the second 401 is final.
    state.clear_requests()
    state.add_fault("status", "GET", "/v3/export-jobs", status=401, count=2)
    with pleo_client_for_credential(credential=credential, run_id=None) as client:
        with pytest.raises(PleoAuthError):
            client.list_export_jobs()
    _register_stored_tokens(credential.pk)
    assert [e["status"] for e in _api_requests(state)] == [401, 401]
    assert len(_token_requests(state)) == 1
    credential.refresh_from_db()
    assert credential.status == Credential.Status.NEEDS_REAUTHORISATION


@pytest.mark.django_db(transaction=True)
def test_no_token_or_secret_in_logs_reports_or_admin_pages(oauth_sandbox, client, caplog):
    state = oauth_sandbox.state
    setup = sandbox_oauth(oauth_sandbox, lifetime=600, expired=True)
    company = Company.objects.create(
        name="OAuth ApS", pleo_company_id=uuid.UUID(setup.company.id), credential=setup.credential
    )
    state.create_job(setup.company.id, items=1, notify=False)
    with pleo_client_for_credential(credential=setup.credential, run_id=None) as pleo:
        assert len(pleo.list_export_jobs(company_id=setup.company.id)) == 1
    credential = _register_stored_tokens(setup.credential.pk)
    secrets_registry.register(setup.client.client_secret)

    user = User.objects.create_superuser("root", "root@example.com", "pw-for-tests")
    client.force_login(user)
    pages = [
        client.get(reverse("admin:exports_credential_change", args=[credential.pk])),
        client.get(reverse("admin:exports_credential_changelist")),
        client.get(reverse("admin:exports_company_changelist")),
        client.get(reverse("admin:exports_company_change", args=[company.pk])),
    ]
    text = "".join(p.content.decode() for p in pages)
    assert all(p.status_code == 200 for p in pages)
    for secret in (
        credential.access_token,
        credential.refresh_token,
        setup.tokens["access_token"],
        setup.tokens["refresh_token"],
        setup.client.client_secret,
    ):
        assert secret not in text
        assert secret[-8:] not in text  # at most the last 4 characters
        assert secret not in caplog.text
    assert "••••" + setup.client.client_secret[-4:] in text
    assert "Reconnect to Pleo" in text  # connected: the button offers a reconnect
    # The sandbox's own log of the refresh and the API call.
    log = json.dumps(_settled(state), default=str)
    for secret in secrets_registry.current():
        assert secret not in log
