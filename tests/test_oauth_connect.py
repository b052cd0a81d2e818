""" "Connect to Pleo" end to end: the admin (Django test client) and the sandbox's OAuth server.

Redirects are followed by hand: POST our connect view → its Location is the sandbox's consent
page → POST the decision to the sandbox with ``requests`` (no redirects followed) → its Location
is our callback → GET it with the test client.
"""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from exports import clock
from exports.models import Company, Credential
from exports.oauth_views import SESSION_KEY
from exports.pleo.oauth import code_challenge
from exports.services.credentials import pleo_client_for_credential
from exports.services.oauth import oauth_redirect_uri
from tests import secrets_registry
from tests.factories import make_credential
from tests.oauth_support import make_oauth_credential

pytestmark = pytest.mark.django_db

CALLBACK = "http://testserver/oauth/pleo/callback/"


class Flow:
    def __init__(self, sandbox, client):
        self.sandbox = sandbox
        self.state = sandbox.state
        self.client = client
        self.company = self.state.add_company("Connect ApS")
        self.oauth_client = self.state.add_oauth_client(
            redirect_uris=[CALLBACK], company_id=self.company.id, name="Export bridge"
        )
        secrets_registry.register(self.oauth_client.client_secret)
        self.credential = make_oauth_credential(
            client_id=self.oauth_client.client_id,
            client_secret=self.oauth_client.client_secret,
            expires_in=None,
            api_base_url=sandbox.url,
        )

    def start(self, credential=None) -> str:
        credential = credential or self.credential
        response = self.client.post(
            reverse("admin:exports_credential_oauth_connect", args=[credential.pk])
        )
        assert response.status_code == 302, response.content[:500]
        return response["Location"]

    def consent(self, authorize_url: str, decision: str) -> str:
        page = requests.get(authorize_url, timeout=5)
        assert page.status_code == 200, page.text
        hidden = {
            name: html.unescape(value)
            for name, value in re.findall(r"name='([^']+)' value='([^']*)'", page.text)
        }
        answer = requests.post(
            f"{self.sandbox.url}/oauth/authorize",
            data={**hidden, "decision": decision},
            allow_redirects=False,
            timeout=5,
        )
        assert answer.status_code == 302, answer.text
        location = answer.headers["Location"]
        code = _query(location).get("code")
        if code:
            secrets_registry.register(code)
        return location

    def back(self, location: str, client=None):
        parts = urlsplit(location)
        assert f"{parts.scheme}://{parts.netloc}" == "http://testserver"
        return (client or self.client).get(f"{parts.path}?{parts.query}", follow=True)

    def settled_log(self) -> list[dict]:
        """The request log once every request is finished (the client may read an answer
        before the sandbox's handler has logged it)."""
        return self.state.request_log.wait_for(
            lambda log: all(e["complete"] for e in log), timeout=5
        )

    def token_requests(self):
        return [e for e in self.settled_log() if e["path"] == "/oauth/token"]


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _unchanged(credential: Credential, status=Credential.Status.OK) -> None:
    fresh = Credential.objects.get(pk=credential.pk)
    assert fresh.status == status
    assert fresh.access_token_ciphertext == credential.access_token_ciphertext
    assert fresh.refresh_token_ciphertext == credential.refresh_token_ciphertext


@pytest.fixture
def flow(pleo_sandbox, admin_client, settings):
    settings.PLEO_OAUTH_BASE_URL = pleo_sandbox.url
    settings.PUBLIC_BASE_URL = "http://testserver"
    return Flow(pleo_sandbox, admin_client)


def test_approve_stores_both_tokens_and_the_api_accepts_them(flow, settings):
    page = flow.client.get(reverse("admin:exports_credential_change", args=[flow.credential.pk]))
    assert "Connect to Pleo" in page.content.decode()
    assert "Reconnect to Pleo" not in page.content.decode()
    assert CALLBACK in page.content.decode()  # the redirect URI to register

    authorize_url = flow.start()
    assert authorize_url.startswith(f"{flow.sandbox.url}/oauth/authorize?")
    params = _query(authorize_url)
    assert params["client_id"] == flow.oauth_client.client_id
    assert params["redirect_uri"] == CALLBACK == oauth_redirect_uri()
    assert params["scope"] == "export-jobs:read export-jobs:write export-items:read"
    assert params["response_type"] == "code" and params["code_challenge_method"] == "S256"
    attempt = flow.client.session[SESSION_KEY][params["state"]]
    verifier = secrets_registry.register(attempt["verifier"])
    assert 43 <= len(verifier) <= 128 and params["code_challenge"] == code_challenge(verifier)
    assert attempt["credential_id"] == flow.credential.pk

    location = flow.consent(authorize_url, "approve")
    assert _query(location)["state"] == params["state"]
    before = clock.now()
    response = flow.back(location)
    assert response.redirect_chain[-1][0] == reverse(
        "admin:exports_credential_change", args=[flow.credential.pk]
    )
    assert any("Connected 'OAuth credential' to Pleo" in m for m in _messages(response))

    credential = Credential.objects.get(pk=flow.credential.pk)
    access = secrets_registry.register(credential.access_token)
    refresh = secrets_registry.register(credential.refresh_token)
    assert access.startswith("sbx_oat_") and refresh.startswith("sbx_ort_")
    assert access not in credential.access_token_ciphertext
    assert credential.status == Credential.Status.OK
    expires = credential.access_token_expires_at
    assert before + timedelta(seconds=3590) <= expires <= clock.now() + timedelta(seconds=3600)
    (token_call,) = flow.token_requests()
    assert token_call["status"] == 200
    assert token_call["body"]["grant_type"] == "authorization_code"
    assert token_call["body"]["code_verifier"] == "<redacted>"
    assert flow.client.session[SESSION_KEY] == {}  # the state is single-use

    # The stored token works for the API.
    flow.state.create_job(flow.company.id, items=1, notify=False)
    with pleo_client_for_credential(credential=credential, run_id=None) as pleo:
        assert len(pleo.list_export_jobs(company_id=flow.company.id)) == 1
    (api_call,) = [e for e in flow.settled_log() if e["path"] == "/v3/export-jobs"]
    assert api_call["status"] == 200 and api_call["identity"].startswith("token:")

    # Replaying the callback: the state was used up, nothing is exchanged again.
    replay = flow.back(location)
    assert any("state is missing, wrong or expired" in m for m in _messages(replay))
    assert len(flow.token_requests()) == 1

    page = flow.client.get(reverse("admin:exports_credential_change", args=[credential.pk]))
    text = page.content.decode()
    assert "Reconnect to Pleo" in text
    assert access not in text and refresh not in text and access[-8:] not in text


def test_deny_changes_nothing(flow):
    location = flow.consent(flow.start(), "deny")
    assert _query(location)["error"] == "access_denied"
    response = flow.back(location)
    assert any("Consent was denied at Pleo" in m for m in _messages(response))
    assert response.redirect_chain[-1][0] == reverse(
        "admin:exports_credential_change", args=[flow.credential.pk]
    )
    _unchanged(flow.credential)
    assert not Credential.objects.get(pk=flow.credential.pk).access_token_ciphertext
    assert flow.token_requests() == []


def test_wrong_or_missing_state_changes_nothing(flow, django_user_model):
    location = flow.consent(flow.start(), "approve")
    query = _query(location)
    for tampered in (
        {**query, "state": "not-the-state"},
        {k: v for k, v in query.items() if k != "state"},
    ):
        response = flow.back(f"{CALLBACK}?{urlencode(tampered)}")
        assert any("state is missing, wrong or expired" in m for m in _messages(response))
        assert response.redirect_chain[-1][0] == reverse("admin:exports_credential_changelist")
    # The right state, but from another browser session of the same user.
    other = Client()
    other.force_login(django_user_model.objects.get(username="root"))
    response = flow.back(location, client=other)
    assert any("state is missing, wrong or expired" in m for m in _messages(response))
    assert flow.token_requests() == []
    _unchanged(flow.credential)


def test_bad_code_is_refused_and_changes_nothing(flow):
    location = flow.consent(flow.start(), "approve")
    query = _query(location)
    response = flow.back(f"{CALLBACK}?{urlencode({**query, 'code': 'sbx_code_bogus'})}")
    assert any("Pleo refused the authorization code" in m for m in _messages(response))
    (token_call,) = flow.token_requests()
    assert token_call["status"] == 400
    _unchanged(flow.credential)


def test_failed_exchange_changes_nothing(flow):
    location = flow.consent(flow.start(), "approve")
    flow.state.add_fault("status", "POST", "/oauth/token", status=503)
    response = flow.back(location)
    assert any(
        "Exchanging the authorization code with Pleo failed" in m for m in _messages(response)
    )
    _unchanged(flow.credential)


def test_reconnect_a_credential_that_needs_reauthorisation(flow):
    stale = make_oauth_credential(
        name="Stale",
        client_id=flow.oauth_client.client_id,
        client_secret=flow.oauth_client.client_secret,
        access_token="sbx_oat_stale_access_0001",
        refresh_token="sbx_ort_stale_refresh_0001",
        api_base_url=flow.sandbox.url,
        status=Credential.Status.NEEDS_REAUTHORISATION,
        last_error="Pleo refused the refresh token. Reconnect to Pleo.",
    )
    company = Company.objects.create(
        name="Stale company", pleo_company_id=uuid.uuid4(), credential=stale
    )
    Company.objects.create(
        name="Fine company", pleo_company_id=uuid.uuid4(), credential=flow.credential
    )
    companies = flow.client.get(reverse("admin:exports_company_changelist")).content.decode()
    assert companies.count("Needs re-authorisation: reconnect to Pleo") == 1
    page = flow.client.get(reverse("admin:exports_credential_change", args=[stale.pk]))
    text = page.content.decode()
    assert "Reconnect to Pleo" in text and "needs re-authorisation" in text

    response = flow.back(flow.consent(flow.start(stale), "approve"))
    assert any("Connected 'Stale' to Pleo" in m for m in _messages(response))
    stale.refresh_from_db()
    assert stale.status == Credential.Status.OK and stale.last_error == ""
    assert stale.status_changed_at is not None
    secrets_registry.register(stale.access_token)
    secrets_registry.register(stale.refresh_token)
    assert stale.refresh_token != "sbx_ort_stale_refresh_0001"
    companies = flow.client.get(reverse("admin:exports_company_changelist")).content.decode()
    assert "Needs re-authorisation" not in companies
    assert company.credential_id == stale.pk


def test_scopes_come_from_the_setting(flow, settings):
    settings.PLEO_OAUTH_SCOPES = "export-jobs:read  export-items:read"
    authorize_url = flow.start()
    assert _query(authorize_url)["scope"] == "export-jobs:read export-items:read"
    flow.back(flow.consent(authorize_url, "approve"))
    (grant,) = flow.state.oauth_grants()
    assert grant["scopes"] == ["export-items:read", "export-jobs:read"]
    credential = Credential.objects.get(pk=flow.credential.pk)
    secrets_registry.register(credential.access_token)
    secrets_registry.register(credential.refresh_token)


def test_connect_is_refused_for_api_keys_and_incomplete_credentials(flow):
    api_key = make_credential(name="Key")
    page = flow.client.get(reverse("admin:exports_credential_change", args=[api_key.pk]))
    assert "Connect to Pleo" not in page.content.decode()
    response = flow.client.post(
        reverse("admin:exports_credential_oauth_connect", args=[api_key.pk]), follow=True
    )
    assert any("not an OAuth 2.0 credential" in m for m in _messages(response))
    no_secret = Credential.objects.create(
        name="No secret", kind=Credential.Kind.OAUTH, oauth_client_id="x"
    )
    response = flow.client.post(
        reverse("admin:exports_credential_oauth_connect", args=[no_secret.pk]), follow=True
    )
    assert any("client secret" in m for m in _messages(response))
    assert SESSION_KEY not in flow.client.session


def test_callback_and_connect_are_staff_only(flow, client, django_user_model):
    location = flow.consent(flow.start(), "approve")
    parts = urlsplit(location)
    anonymous = Client()
    answer = anonymous.get(f"{parts.path}?{parts.query}")
    assert answer.status_code == 302 and "/admin/login/" in answer["Location"]
    for method in (anonymous.get, anonymous.post):
        connect = method(
            reverse("admin:exports_credential_oauth_connect", args=[flow.credential.pk])
        )
        assert connect.status_code == 302 and "/admin/login/" in connect["Location"]
    user = django_user_model.objects.create_user("clerk", password="pw-for-tests-2")
    clerk = Client()
    clerk.force_login(user)
    answer = clerk.get(f"{parts.path}?{parts.query}")
    assert answer.status_code == 302 and "/admin/login/" in answer["Location"]
    assert flow.token_requests() == []


def test_connect_starts_on_post_only_from_the_buttons_form(flow, admin_client):
    """A GET (a link, an image, a prefetch) starts nothing and keeps the pending attempts; the
    button is a form that POSTs with the CSRF token, and a POST without it is refused."""
    url = reverse("admin:exports_credential_oauth_connect", args=[flow.credential.pk])
    pending = _query(flow.start())["state"]

    response = flow.client.get(url)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert list(flow.client.session[SESSION_KEY]) == [pending]  # nothing started or pushed out

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(User.objects.get(username="root"))
    page = browser.get(reverse("admin:exports_credential_change", args=[flow.credential.pk]))
    text = page.content.decode()
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*>\s*(.*?)</form>', text, re.S)
    assert form and form[1] == url and 'id="pleo-oauth-connect"' in form[2]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form[2])[1]
    assert f'href="{url}"' not in text  # no link to it any more

    refused = browser.post(url)
    assert refused.status_code == 403  # CSRF
    assert SESSION_KEY not in browser.session
    started = browser.post(url, {"csrfmiddlewaretoken": token})
    assert started.status_code == 302
    assert started["Location"].startswith(f"{flow.sandbox.url}/oauth/authorize?")
    assert _query(started["Location"])["state"] in browser.session[SESSION_KEY]
