"""A refused token refresh whose answer quotes a secret: the re-authorisation reason is scrubbed
where it is built (``exports.services.token_refresh``), for a Pleo OAuth credential and a Xero
connection alike. The identity provider (``responses``) answers ``invalid_grant`` with an
``error_description`` quoting the refresh token presented (as sent and URL-encoded), the access
token and the client secret; the log, the audit entry, the stored reason, the admin page and the
failure the run reports show ``[hidden]`` and none of them. Every secret is registered
(``tests/secrets_registry.py``): the autouse check reads the logs too."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest
import responses
from django.urls import reverse

from exports.adapters import get_adapter
from exports.models import AuditEntry, Credential, Trigger, XeroConnection
from exports.redaction import HIDDEN
from exports.services.start_flow import company_check_run
from tests import oauth_support, secrets_registry
from tests.factories import make_company
from tests.xero import support as xero

pytestmark = pytest.mark.django_db

oauth_settings = oauth_support.oauth_settings  # a fixture
xero_settings = xero.xero_settings  # a fixture

# A "/" and a "+": the URL-encoded form differs from the token as sent.
PLEO_REFRESH = "rt/quoted+by_the_idp_7c1e"
PLEO_ACCESS = "at_quoted_by_the_idp_4b2d"
PLEO_CLIENT_SECRET = "ocs_quoted_by_the_idp_9a0f"
XERO_REFRESH = "xrt/quoted+by_xero_identity_51aa"
XERO_ACCESS = "xat-quoted-by-xero-identity-77b0"


def refuse_quoting(token_url: str, *, refresh: str, access: str, client_secret: str) -> list[str]:
    """The token endpoint answers ``invalid_grant`` quoting every secret; returns them (and the
    refresh token's URL-encoded form)."""
    encoded = quote(refresh, safe="")
    responses.post(
        token_url,
        status=400,
        json={
            "error": "invalid_grant",
            "error_description": (
                f"refresh_token {refresh} (sent as {encoded}) is revoked; access_token {access}; "
                f"client_secret={client_secret}"
            ),
        },
    )
    return [refresh, encoded, access, client_secret]


def assert_hidden(texts: dict[str, str], quoted: list[str]) -> None:
    """Each text shows the placeholder and no quoted secret (nor a part of the description
    that quoted them: the reason is there, scrubbed, not dropped)."""
    for where, text in texts.items():
        assert HIDDEN in text, f"{where}: no placeholder in {text!r}"
        assert "is revoked" in text, f"{where}: the identity provider's words are gone"
        leaked = [secret for secret in quoted if secret in text]
        assert not leaked, f"{where} shows {[s[:6] + '…' for s in leaked]}"


def warnings_of(caplog, logger: str) -> str:
    return "\n".join(
        r.getMessage() for r in caplog.records if r.name == logger and r.levelno >= logging.WARNING
    )


@responses.activate
def test_a_pleo_credentials_reason_hides_what_the_identity_provider_quoted(
    oauth_settings, admin_client, caplog
):
    credential = oauth_support.make_oauth_credential(
        client_secret=PLEO_CLIENT_SECRET,
        access_token=PLEO_ACCESS,
        refresh_token=PLEO_REFRESH,
        expires_in=-5,
    )
    company = make_company(name="Quoted ApS", credential=credential)
    quoted = refuse_quoting(
        oauth_support.TOKEN_URL,
        refresh=PLEO_REFRESH,
        access=PLEO_ACCESS,
        client_secret=PLEO_CLIENT_SECRET,
    )
    assert set(quoted) - {quote(PLEO_REFRESH, safe="")} <= secrets_registry.current()

    with caplog.at_level(logging.INFO):
        result = company_check_run(company=company, trigger=Trigger.MANUAL)

    credential.refresh_from_db()
    assert credential.status == Credential.Status.NEEDS_REAUTHORISATION
    audit = AuditEntry.objects.filter(company=company, outcome=AuditEntry.Outcome.ERROR)
    page = admin_client.get(reverse("admin:exports_credential_change", args=[credential.pk]))
    assert page.status_code == 200
    assert_hidden(
        {
            "the log": warnings_of(caplog, "exports.services.oauth"),
            "the audit entry": "\n".join(audit.values_list("message", flat=True)),
            "the stored reason": credential.last_error,
            "the run's error": result.error,
            "the credential page": page.content.decode(),
        },
        quoted,
    )


@responses.activate
def test_a_xero_connections_reason_hides_what_xero_identity_quoted(
    xero_settings, admin_client, caplog
):
    company = make_company(name="Quoted Ltd")
    connection = xero.make_connection(
        company, access=XERO_ACCESS, refresh=XERO_REFRESH, expires_in=-60
    )
    quoted = refuse_quoting(
        xero.TOKEN_URL,
        refresh=XERO_REFRESH,
        access=XERO_ACCESS,
        client_secret=xero_settings.XERO_CLIENT_SECRET,
    )

    with caplog.at_level(logging.INFO):
        result = get_adapter("xero", company=company).validate(job=None)

    connection.refresh_from_db()
    assert connection.status == XeroConnection.Status.NEEDS_REAUTHORISATION
    audit = AuditEntry.objects.filter(company=company, step="xero_connection", outcome="error")
    page = admin_client.get(reverse("admin:exports_company_change", args=[company.pk]))
    assert page.status_code == 200
    assert 'id="xero-reauthorise"' in page.content.decode()
    assert_hidden(
        {
            "the log": warnings_of(caplog, "exports.services.xero_connections"),
            "the audit entry": "\n".join(audit.values_list("message", flat=True)),
            "the stored reason": connection.last_error,
            "the job failure sent to Pleo": result.message,
            "the company page": page.content.decode(),
        },
        quoted,
    )
