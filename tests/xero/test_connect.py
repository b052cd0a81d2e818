"""'Connect Xero' through the admin (Django test client; Xero answered by ``responses``): consent
URL, callback, tenant choice, sync with counts; a revoked connection shown and blocking."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.urls import reverse

from exports.adapters import adapter_choices, get_adapter
from exports.models import AuditEntry, RequestBudget, XeroAccount, XeroConnection
from exports.pleo import BudgetExhausted, JobFailureReasonType
from exports.services import xero_connections
from exports.xero_views import SESSION_KEY
from tests.factories import make_company
from tests.xero.support import (
    ACCOUNTING,
    API,
    CLIENT_ID,
    LOGIN,
    TENANT,
    TOKEN_URL,
    connections_body,
    make_connection,
    mock_settings_reads,
    token_answer,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("xero_settings")]


def start(admin_client, company) -> dict:
    response = admin_client.post(reverse("admin:exports_company_xero_connect", args=[company.pk]))
    assert response.status_code == 302
    url = urlsplit(response["Location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{LOGIN}/identity/connect/authorize"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == "http://testserver/oauth/xero/callback/"
    assert query["code_challenge_method"] == "S256" and "offline_access" in query["scope"]
    return query


def page_of(admin_client, company) -> str:
    response = admin_client.get(reverse("admin:exports_company_change", args=[company.pk]))
    assert response.status_code == 200
    return response.content.decode()


@responses.activate
def test_connect_with_one_organisation_stores_encrypted_tokens_and_syncs(admin_client):
    company = make_company(name="Xero Ltd")
    query = start(admin_client, company)
    responses.post(TOKEN_URL, json=token_answer("xat-connect-0001", "xrt-connect-0001"))
    responses.get(f"{API}/connections", json=connections_body((TENANT, "Demo Company (UK)")))
    mock_settings_reads(responses)

    response = admin_client.get(
        reverse("xero-oauth-callback"), {"code": "xcode-0001", "state": query["state"]}
    )
    assert response.status_code == 302
    connection = XeroConnection.objects.get(company=company)
    assert connection.tenant_id == TENANT and connection.status == XeroConnection.Status.OK
    assert connection.base_currency == "GBP"
    assert "xat-connect-0001" not in connection.access_token_ciphertext
    assert connection.access_token == "xat-connect-0001"
    assert XeroAccount.objects.filter(connection=connection).count() == 2
    sync = AuditEntry.objects.get(company=company, step="xero_sync")
    assert "2 accounts, 1 tax rates, 1 tracking options" in sync.message
    assert AuditEntry.objects.filter(company=company, step="xero_call").count() == 5
    page = page_of(admin_client, company)
    assert "Connected to Xero organisation" in page and "Demo Company (UK)" in page
    assert "xat-connect-0001" not in page and "xrt-connect-0001" not in page
    # the state was single-use
    again = admin_client.get(
        reverse("xero-oauth-callback"), {"code": "xcode-0001", "state": query["state"]}
    )
    assert again.status_code == 302 and len(responses.calls) == 6


@responses.activate
def test_several_organisations_are_offered_and_one_is_chosen(admin_client):
    company = make_company(name="Xero Group")
    other = uuid.uuid4()
    query = start(admin_client, company)
    responses.post(TOKEN_URL, json=token_answer("xat-choose-0001", "xrt-choose-0001"))
    responses.get(f"{API}/connections", json=connections_body((TENANT, "UK"), (other, "NZ")))
    admin_client.get(reverse("xero-oauth-callback"), {"code": "c", "state": query["state"]})
    connection = XeroConnection.objects.get(company=company)
    assert connection.tenant_id is None and len(connection.tenant_choices) == 2
    page = page_of(admin_client, company)
    assert 'form="xero-tenant-form"' in page and "NZ" in page

    mock_settings_reads(responses)
    tenant_url = reverse("admin:exports_company_xero_tenant", args=[company.pk])
    assert admin_client.post(tenant_url, {"tenant_id": str(uuid.uuid4())}).status_code == 302
    connection.refresh_from_db()
    assert connection.tenant_id is None  # not offered: refused
    admin_client.post(tenant_url, {"tenant_id": str(other)})
    connection.refresh_from_db()
    assert connection.tenant_id == other  # its name is now the synced organisation's
    assert responses.calls[-1].request.headers["xero-tenant-id"] == str(other)


def test_a_callback_with_a_foreign_state_changes_nothing(admin_client):
    company = make_company(name="Xero Ltd")
    start(admin_client, company)
    response = admin_client.get(reverse("xero-oauth-callback"), {"code": "c", "state": "forged"})
    assert response.status_code == 302
    assert not XeroConnection.objects.filter(company=company).exists()
    assert len(admin_client.session[SESSION_KEY]) == 1  # the real attempt is still pending


def test_denied_consent_changes_nothing_and_says_so(admin_client):
    company = make_company(name="Xero Ltd")
    query = start(admin_client, company)
    answer = admin_client.get(
        reverse("xero-oauth-callback"),
        {"error": "access_denied", "state": query["state"]},
        follow=True,
    )
    assert "Consent was denied at Xero, so the company was not connected" in answer.content.decode()
    assert not XeroConnection.objects.filter(company=company).exists()


@responses.activate
def test_a_reconnect_waits_briefly_for_a_spent_minute_then_says_so(
    admin_client, monkeypatch, caplog
):
    """The consent callback reads /connections with a person waiting: a minute spent by a running
    export is waited for up to INTERACTIVE_BUDGET_WAIT, past that the admin says why (no 500)."""
    from exports.services import budget

    connection = make_connection()
    XeroConnection.objects.filter(pk=connection.pk).update(tenant_id=uuid.uuid4())
    connection.refresh_from_db()
    monkeypatch.setattr(xero_connections, "XERO_BUDGET", budget.Rate(limit=2, window=60.0))
    monkeypatch.setattr(xero_connections, "INTERACTIVE_BUDGET_WAIT", 0.05)
    export = xero_connections.XeroBudget(connection.tenant_id)
    export("PUT", "/api.xro/2.0/ManualJournals")  # a running export spends the minute
    query = start(admin_client, connection.company)
    responses.post(TOKEN_URL, json=token_answer("xat-again-0001", "xrt-again-0001"))
    listed = responses.get(f"{API}/connections", json=connections_body((TENANT, "Demo")))

    answer = admin_client.get(
        reverse("xero-oauth-callback"), {"code": "c", "state": query["state"]}, follow=True
    )
    assert answer.status_code == 200
    text = answer.content.decode()
    assert "Reading Xero&#x27;s /connections failed" in text and "budget" in text
    assert listed.call_count == 0  # nothing sent past the budget
    assert "Xero GET /connections not sent: our request budget" in caplog.text  # named Xero

    # A budget that has room again within the wait: the reconnect waits and reads /connections.
    RequestBudget.objects.all().delete()
    monkeypatch.setattr(xero_connections, "XERO_BUDGET", budget.Rate(limit=2, window=0.2))
    monkeypatch.setattr(xero_connections, "INTERACTIVE_BUDGET_WAIT", 2.0)
    xero_connections.XeroBudget(connection.tenant_id)("PUT", "/api.xro/2.0/ManualJournals")
    query = start(admin_client, connection.company)
    responses.post(TOKEN_URL, json=token_answer("xat-again-0002", "xrt-again-0002"))
    mock_settings_reads(responses)  # the sync after it (unanswered: ~2.5 s of retries)
    admin_client.get(reverse("xero-oauth-callback"), {"code": "c", "state": query["state"]})
    assert listed.call_count == 1
    connection.refresh_from_db()
    assert connection.access_token == "xat-again-0002" and connection.status == "ok"


def test_connect_is_post_only(admin_client):
    company = make_company(name="Xero Ltd")
    url = reverse("admin:exports_company_xero_connect", args=[company.pk])
    assert admin_client.get(url).status_code == 405


@responses.activate
def test_a_revoked_connection_needs_reauthorisation_is_shown_and_blocks_jobs(admin_client):
    connection = make_connection(access="xat-old-0001", refresh="xrt-old-0001", expires_in=-60)
    responses.post(
        TOKEN_URL, status=400, json={"error": "invalid_grant", "error_description": "revoked"}
    )
    adapter = get_adapter("xero", company=connection.company)
    result = adapter.validate(job=None)
    assert not result.ok
    assert result.failure_type == JobFailureReasonType.ACCOUNTING_SYSTEM_AUTHENTICATION_FAILURE
    assert "Reconnect Xero" in result.message
    connection.refresh_from_db()
    assert connection.status == XeroConnection.Status.NEEDS_REAUTHORISATION
    assert "revoked" in connection.last_error
    assert len(responses.calls) == 1  # the refresh token was presented once, never again
    again = adapter.validate(job=None)
    assert again.failure_type == JobFailureReasonType.ACCOUNTING_SYSTEM_AUTHENTICATION_FAILURE
    assert len(responses.calls) == 1
    page = page_of(admin_client, connection.company)
    assert 'id="xero-reauthorise"' in page and "Reconnect Xero" in page
    listing = admin_client.get(reverse("admin:exports_company_changelist")).content.decode()
    assert "Xero needs re-authorisation" in listing


@responses.activate
def test_validate_checks_scopes_tenant_and_base_currency():
    connection = make_connection(scopes="accounting.settings.read offline_access")
    adapter = get_adapter("xero", company=connection.company)
    result = adapter.validate(job=None)
    assert result.failure_type == JobFailureReasonType.INVALID_CONFIGURATION
    assert "accounting.manualjournals" in result.message and len(responses.calls) == 0

    connection = make_connection(make_company(name="Scoped Ltd"))
    responses.get(
        f"{ACCOUNTING}/Organisation",
        json={
            "Organisations": [
                {"OrganisationID": str(uuid.uuid4()), "Name": "Demo", "BaseCurrency": "GBP"}
            ]
        },
    )
    adapter = get_adapter("xero", company=connection.company)
    assert adapter.check_connection().ok
    assert adapter.validate(job=None).ok
    assert "xero" in dict(adapter_choices())  # selectable: it books


def test_a_spent_minute_is_waited_for_with_the_lease_renewed_and_a_longer_wait_defers(
    monkeypatch,
):
    from exports.services import budget

    monkeypatch.setattr(xero_connections, "XERO_BUDGET", budget.Rate(limit=2, window=0.2))
    beats = []
    patient = xero_connections.XeroBudget(
        uuid.uuid4(), wait_seconds=1, heartbeat=lambda: beats.append(1)
    )
    for _ in range(3):
        patient("PUT", "/api.xro/2.0/ManualJournals")
    assert 0 < patient.waited <= 1 and beats  # waited inside the run, the lease renewed
    hasty = xero_connections.XeroBudget(uuid.uuid4(), wait_seconds=0.01)
    hasty("PUT", "/api.xro/2.0/ManualJournals")
    with pytest.raises(BudgetExhausted):  # the wait is longer than allowed: the run defers
        hasty("PUT", "/api.xro/2.0/ManualJournals")


@responses.activate
def test_an_expiring_token_is_refreshed_once_through_the_shared_loop_and_both_rotate():
    connection = make_connection(access="xat-stale-0001", refresh="xrt-stale-0001", expires_in=5)
    responses.post(TOKEN_URL, json=token_answer("xat-fresh-0001", "xrt-fresh-0001"))
    responses.get(
        f"{ACCOUNTING}/Organisation",
        json={"Organisations": [{"OrganisationID": str(TENANT), "BaseCurrency": "GBP"}]},
    )
    assert get_adapter("xero", company=connection.company).check_connection().ok
    connection.refresh_from_db()
    assert connection.access_token == "xat-fresh-0001"
    assert connection.refresh_token == "xrt-fresh-0001"
    assert connection.refreshing_until is None
    token_call, api_call = responses.calls
    assert "refresh_token=xrt-stale-0001" in token_call.request.body
    assert api_call.request.headers["Authorization"] == "Bearer xat-fresh-0001"


@responses.activate
def test_calls_to_one_organisation_share_a_budget_under_xeros_minute_limit():
    connection = make_connection()
    hook = xero_connections.xero_budget_hook(connection=connection)
    assert hook.rate.limit < 60 and str(TENANT) in hook.key
    with pytest.raises(BudgetExhausted):
        for _ in range(hook.rate.limit + 1):
            hook("GET", "/api.xro/2.0/Accounts")
    with xero_connections.xero_client(connection=connection) as client:
        with pytest.raises(BudgetExhausted):
            client.accounts()
    assert len(responses.calls) == 0  # refused before anything was sent
