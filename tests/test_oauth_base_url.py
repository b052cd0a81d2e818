"""In sandbox mode "Connect to Pleo" goes to the sandbox, never Pleo's login.

``serve`` points ``PLEO_OAUTH_BASE_URL`` at the sandbox's OAuth server when ``PLEO_SANDBOX`` is
on, and the demo seeds an OAuth credential whose client the sandbox knows, so the whole flow works
locally. A credential may override its OAuth base URL (allow-listed hosts only; changing it needs
the client secret again and drops the tokens), used for both authorize and token.
"""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import pytest
import responses
from django.core.management.base import BaseCommand
from django.urls import reverse

from exports.management.commands.serve import serve_environment
from exports.models import Credential
from exports.pleo.hosts import HostNotAllowed
from exports.services import oauth as oauth_service
from exports.services.demo import DEMO_OAUTH_CREDENTIAL, Demo
from tests import secrets_registry
from tests.admin_forms import credential_form
from tests.oauth_support import make_oauth_credential
from tests.test_oauth_connect import Flow

pytestmark = pytest.mark.django_db

EVIL = "https://auth.pleo.io.evil.example"


@pytest.mark.parametrize("sandbox", [True, False])
def test_serve_points_oauth_at_the_sandbox_in_sandbox_mode(settings, sandbox):
    settings.PLEO_SANDBOX = sandbox
    env = serve_environment(host="127.0.0.1", port=8000, sandbox_port=8765, environ={})
    if sandbox:
        assert env["PLEO_OAUTH_BASE_URL"] == "http://127.0.0.1:8765"
    else:
        assert "PLEO_OAUTH_BASE_URL" not in env  # Pleo's own, from the settings
    assert env["PUBLIC_BASE_URL"] == "http://127.0.0.1:8000"


def _connect_and_approve(flow: Flow, credential: Credential, sandbox_url: str):
    location = flow.start(credential)
    assert location.startswith(f"{sandbox_url}/oauth/authorize?"), location
    answer = flow.consent(location, "approve")
    return flow.back(answer)


def test_the_demo_oauth_credential_connects_through_the_sandbox(
    pleo_sandbox, admin_client, settings
):
    """What ``serve`` does with PLEO_SANDBOX=1, in process: its environment, the demo's seeding,
    then "Connect to Pleo" on the demo's OAuth credential, approved at the sandbox."""
    settings.PLEO_SANDBOX = True
    settings.PLEO_OAUTH_BASE_URL = "https://auth.pleo.io"  # what .env.example says
    port = urlsplit(pleo_sandbox.url).port
    env = serve_environment(host="testserver", port=80, sandbox_port=port, environ={})
    settings.PLEO_OAUTH_BASE_URL = env["PLEO_OAUTH_BASE_URL"]
    settings.PUBLIC_BASE_URL = "http://testserver"
    command = BaseCommand(stdout=io.StringIO(), stderr=io.StringIO())
    demo = Demo(command=command, sandbox_port=port, spawn=None, manage=None)
    demo.seed(public_base_url="http://testserver")

    credential = Credential.objects.get(name=DEMO_OAUTH_CREDENTIAL)
    secrets_registry.register(credential.oauth_client_secret)
    assert credential.kind == Credential.Kind.OAUTH and not credential.oauth_base_url
    flow = Flow.__new__(Flow)
    flow.sandbox, flow.state, flow.client = pleo_sandbox, pleo_sandbox.state, admin_client
    response = _connect_and_approve(flow, credential, pleo_sandbox.url)
    assert response.status_code == 200
    credential.refresh_from_db()
    assert credential.refresh_token_ciphertext and credential.access_token_ciphertext
    assert credential.status == Credential.Status.OK
    for token in (credential.access_token, credential.refresh_token):
        secrets_registry.register(token)


@pytest.fixture
def override_flow(pleo_sandbox, admin_client, settings):
    settings.PLEO_OAUTH_BASE_URL = "https://auth.pleo.io"  # never reached: the override wins
    settings.PUBLIC_BASE_URL = "http://testserver"
    flow = Flow(pleo_sandbox, admin_client)
    flow.credential.oauth_base_url = pleo_sandbox.url
    flow.credential.save()
    return flow


def test_a_credential_override_is_used_for_authorize_and_token(override_flow, pleo_sandbox):
    flow = override_flow
    response = _connect_and_approve(flow, flow.credential, pleo_sandbox.url)
    assert response.status_code == 200
    assert len(flow.token_requests()) == 1  # the code went to the override, nowhere else
    flow.credential.refresh_from_db()
    assert flow.credential.refresh_token_ciphertext
    secrets_registry.register(flow.credential.access_token)
    secrets_registry.register(flow.credential.refresh_token)
    config = oauth_service.oauth_config(credential=flow.credential)
    assert config.base_url == pleo_sandbox.url


def test_the_form_refuses_an_oauth_base_url_outside_the_allow_list(admin_client):
    credential = make_oauth_credential(api_base_url="https://pleo.test")
    url = reverse("admin:exports_credential_change", args=[credential.pk])
    with responses.RequestsMock():
        response = admin_client.post(
            url,
            credential_form(
                credential, oauth_base_url=EVIL, oauth_client_secret="ocs_new_secret_1"
            ),
        )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "is not a Pleo host" in str(errors["oauth_base_url"])
    credential.refresh_from_db()
    assert credential.oauth_base_url == ""


def test_changing_the_oauth_base_url_needs_the_secret_again_and_drops_the_tokens(admin_client):
    credential = make_oauth_credential(
        api_base_url="https://pleo.test",
        access_token="at_before_the_move_1234",
        refresh_token="rt_before_the_move_5678",
    )
    url = reverse("admin:exports_credential_change", args=[credential.pk])
    with responses.RequestsMock():
        response = admin_client.post(
            url, credential_form(credential, oauth_base_url="https://auth.pleo.test")
        )
    assert response.status_code == 200
    assert "enter the OAuth client secret again" in str(
        response.context["adminform"].form.errors["oauth_client_secret"]
    )
    secret = secrets_registry.register("ocs_entered_again_4321")
    with responses.RequestsMock():  # not connected now: saving makes no call
        response = admin_client.post(
            url,
            credential_form(
                credential, oauth_base_url="https://auth.example.test", oauth_client_secret=secret
            ),
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    credential.refresh_from_db()
    assert credential.oauth_base_url == "https://auth.example.test"
    assert not credential.access_token_ciphertext and not credential.refresh_token_ciphertext


def test_a_stored_disallowed_override_is_refused_before_any_request(settings):
    settings.PLEO_OAUTH_BASE_URL = "https://auth.pleo.io"
    credential = make_oauth_credential(
        oauth_base_url=EVIL, refresh_token="rt_never_sent_anywhere_0000"
    )
    with responses.RequestsMock():  # any request fails the test
        with pytest.raises(oauth_service.ConnectFailed, match="OAuth base URL is refused"):
            oauth_service.oauth_connect_begin(credential=credential)
        with pytest.raises(HostNotAllowed):
            oauth_service.oauth_config(credential=credential)


def test_database_check_names_a_stored_refused_oauth_base_url():
    from django.core import checks

    bad = make_oauth_credential(name="Old OAuth row")
    Credential.objects.filter(pk=bad.pk).update(oauth_base_url=EVIL)
    warnings = [w for w in checks.run_checks(databases=["default"]) if w.id == "exports.W101"]
    assert [w.msg.split(":")[0] for w in warnings] == [f"Credential {bad.pk} (Old OAuth row)"]
    assert "its OAuth base URL is refused" in warnings[0].msg
