"""The credential form and page.

A new form does not claim "Status: OK"; saving a new or changed key asks Pleo once (one list call)
and says clearly when Pleo refuses it; "Test connection" and "Subscribe webhooks" buttons (POST,
permission-checked, company-scoped); the status as a banner at the top; the help text shows the
API base URL in use. Pleo is faked at the transport (``responses``).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from exports.models import Credential
from tests import secrets_registry
from tests.admin_forms import credential_form
from tests.client_fakes import page
from tests.factories import make_company, make_credential

pytestmark = pytest.mark.django_db

PLEO = "https://pleo.test"
JOBS = f"{PLEO}/v3/export-jobs"


@pytest.fixture
def root(admin_client):
    return admin_client


def _staff(client, *codenames, name="staff"):
    user = User.objects.create_user(name, f"{name}@example.com", "pw", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return client


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _add_form(**overrides) -> dict:
    return credential_form(api_base_url=PLEO, **overrides)


def _change_form(credential, **overrides) -> dict:
    return credential_form(credential, **overrides)


def _banner(html: str) -> str:
    found = re.search(r'id="credential-status-banner">\s*<li class="(\w+)">(.*?)</li>', html, re.S)
    return f"{found[1]}: {found[2].strip()}" if found else ""


def test_the_add_form_does_not_say_status_ok(root):
    html = root.get(reverse("admin:exports_credential_add")).content.decode()
    assert "field-status" not in html  # no read-only "Status: OK" for a credential never tested
    assert "credential-status-banner" not in html
    assert "Test connection" not in html


def test_saving_a_key_pleo_refuses_saves_it_marked_invalid_and_says_so(root):
    key = secrets_registry.register("pk_test_refused_by_pleo_ABCD1234")
    with responses.RequestsMock() as rsps:
        rsps.get(JOBS, status=401, json={"type": "UNAUTHORIZED", "message": "Unauthorized"})
        response = root.post(
            reverse("admin:exports_credential_add"), _add_form(api_key=key), follow=True
        )
        assert len(rsps.calls) == 1  # one list call, no retry
    credential = Credential.objects.get(name="New credential")
    assert credential.api_key == key  # saved
    assert credential.status == Credential.Status.INVALID
    warnings = [str(m) for m in response.context["messages"] if m.level_tag == "warning"]
    assert warnings and "refused the credential" in warnings[0], _messages(response)
    assert "marked invalid" in warnings[0]
    assert key not in response.content.decode()
    html = root.get(reverse("admin:exports_credential_change", args=[credential.pk])).content
    banner = _banner(html.decode())
    assert banner.startswith("error: Status: Invalid: Pleo refused the API key (401"), banner


def test_saving_a_key_pleo_accepts_asks_once_for_its_company_and_shows_it_in_the_banner(root):
    credential = make_credential(api_base_url=PLEO)
    company = make_company(credential=credential)
    key = secrets_registry.register("pk_test_accepted_by_pleo_EFGH5678")
    url = reverse("admin:exports_credential_change", args=[credential.pk])
    with responses.RequestsMock() as rsps:
        rsps.get(JOBS, json=page([], next_cursor=None))
        response = root.post(url, _change_form(credential, api_key=key), follow=True)
        assert len(rsps.calls) == 1
        query = parse_qs(urlsplit(rsps.calls[0].request.url).query)
    assert query == {"limit": ["1"], "company_id": [str(company.pleo_company_id)]}
    assert any("accepted the credential" in m for m in _messages(response)), _messages(response)
    credential.refresh_from_db()
    assert credential.status == Credential.Status.OK
    assert credential.connection_checked_at is not None
    html = root.get(url).content.decode()
    assert _banner(html).startswith(f"success: Status: Pleo at {PLEO} accepted the credential")


def test_an_edit_that_changes_no_key_or_address_makes_no_call(root):
    credential = make_credential(api_base_url=PLEO)
    url = reverse("admin:exports_credential_change", args=[credential.pk])
    with responses.RequestsMock():  # any request would fail the test
        response = root.post(url, _change_form(credential, name="Renamed"))
    assert response.status_code == 302


def test_a_credential_never_tested_says_so_at_the_top(root):
    credential = make_credential(api_base_url=PLEO)
    html = root.get(reverse("admin:exports_credential_change", args=[credential.pk])).content
    assert _banner(html.decode()).startswith("warning: Status: Not tested yet")


def test_test_connection_button_calls_pleo_once_and_reports(root):
    credential = make_credential(api_base_url=PLEO)
    change = reverse("admin:exports_credential_change", args=[credential.pk])
    assert "credential-test-connection" in root.get(change).content.decode()
    url = reverse("admin:exports_credential_test_connection", args=[credential.pk])
    assert root.get(url).status_code == 405  # POST only
    with responses.RequestsMock() as rsps:
        rsps.get(JOBS, status=503, json={"type": "UNAVAILABLE", "message": "down"})
        response = root.post(url, follow=True)
        assert len(rsps.calls) == 1  # one attempt: the operator is waiting
    assert response.redirect_chain[-1][0] == change
    assert any("answered 503" in m for m in _messages(response)), _messages(response)
    credential.refresh_from_db()
    assert credential.status == Credential.Status.OK  # a 5xx says nothing about the key


def test_test_connection_needs_the_change_permission(client):
    credential = make_credential(api_base_url=PLEO)
    _staff(client, "view_credential", "view_all_companies")
    change = reverse("admin:exports_credential_change", args=[credential.pk])
    assert "credential-test-connection" not in client.get(change).content.decode()
    with responses.RequestsMock():
        response = client.post(
            reverse("admin:exports_credential_test_connection", args=[credential.pk]), follow=True
        )
    assert "You may not test credentials against Pleo." in _messages(response)


def test_buttons_of_another_companys_credential_are_not_found(client):
    credential = make_credential(api_base_url=PLEO)
    make_company(credential=credential)
    _staff(client, "view_credential", "change_credential", "manage_webhooks")  # no membership
    with responses.RequestsMock():
        for name in ("test_connection", "subscribe_webhooks"):
            url = reverse(f"admin:exports_credential_{name}", args=[credential.pk])
            assert client.post(url).status_code == 404


def test_subscribe_webhooks_button_uses_the_subscription_service(client, monkeypatch):
    from exports.services import subscriptions

    called = []
    monkeypatch.setattr(
        subscriptions,
        "webhooks_subscribe",
        lambda credential: called.append(credential.pk) or "Subscribed.",
    )
    credential = make_credential(api_base_url=PLEO)
    url = reverse("admin:exports_credential_subscribe_webhooks", args=[credential.pk])

    _staff(client, "view_credential", "change_credential", "view_all_companies", name="plain")
    response = client.post(url, follow=True)
    assert called == [] and "You may not subscribe webhooks." in _messages(response)

    _staff(client, "view_credential", "manage_webhooks", "view_all_companies", name="hooks")
    change = reverse("admin:exports_credential_change", args=[credential.pk])
    assert "credential-subscribe-webhooks" in client.get(change).content.decode()
    assert client.get(url).status_code == 405
    response = client.post(url, follow=True)
    assert called == [credential.pk]
    assert f"{credential.name}: Subscribed." in _messages(response)


def test_the_help_text_shows_the_api_base_url_in_use(root, settings):
    settings.PLEO_API_BASE_URL = "https://external.staging.pleo.io"
    plain = make_credential(name="Plain")
    html = root.get(reverse("admin:exports_credential_change", args=[plain.pk])).content.decode()
    assert "In use now: https://external.staging.pleo.io" in html
    override = make_credential(name="Override", api_base_url=PLEO)
    html = root.get(reverse("admin:exports_credential_change", args=[override.pk])).content
    assert f"In use now: {PLEO}" in html.decode()
