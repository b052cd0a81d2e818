"""Against the local Xero over real HTTP (``xero_sandbox``): connect a company through the admin
(the test client, the consent form posted with ``requests``), sync, map, validate a job, and a
connection removed at Xero shown and blocking."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from django.urls import reverse

from exports.adapters import BookingRequest, get_adapter
from exports.models import RequestBudget, XeroAccount, XeroConnection, XeroTaxRate
from exports.pleo import ItemFailureReasonType, JobFailureReasonType
from exports.services import xero_connections, xero_mapping, xero_sync
from tests import secrets_registry
from tests.factories import make_company
from tests.xero.support import VirtualWaits
from tests.xero.test_mapping import stored

pytestmark = pytest.mark.django_db

CALLBACK = "http://testserver/oauth/xero/callback/"


@pytest.fixture
def local_xero(xero_sandbox, settings, fresh_budget, monkeypatch):
    # Our budgets in the database (rolled back with the test: the local Xero's tenant ids are
    # the same in every test), their waits moving the local Xero's clock instead of sleeping.
    settings.PLEO_RATE_LIMIT_BACKEND = "database"
    xero_sandbox.waits = VirtualWaits(xero_sandbox.state).install(monkeypatch, retry_after=False)
    client = xero_sandbox.state.add_oauth_client(redirect_uris=[CALLBACK], name="Bridge")
    secrets_registry.register(client.client_secret)
    settings.XERO_CLIENT_ID = client.client_id
    settings.XERO_CLIENT_SECRET = client.client_secret
    settings.XERO_API_BASE_URL = xero_sandbox.url
    settings.XERO_IDENTITY_BASE_URL = xero_sandbox.url
    settings.XERO_LOGIN_BASE_URL = xero_sandbox.url
    settings.XERO_ALLOW_LOOPBACK = True
    settings.PUBLIC_BASE_URL = "http://testserver"
    return xero_sandbox


def connect(admin_client, company, tenants) -> XeroConnection:
    """POST Connect Xero → the sandbox's consent form (allowed for ``tenants``) → our callback."""
    start = admin_client.post(reverse("admin:exports_company_xero_connect", args=[company.pk]))
    consent_url = start["Location"]
    params = dict(parse_qsl(urlsplit(consent_url).query))
    page = requests.get(consent_url, timeout=5)
    assert page.status_code == 200 and "wants to access your Xero data" in page.text
    decision = requests.post(
        consent_url.split("?")[0],
        data={**params, "decision": "allow", "tenant": [t.id for t in tenants]},
        allow_redirects=False,
        timeout=5,
    )
    assert decision.status_code == 302, decision.text[:300]
    back = urlsplit(decision.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    answer = admin_client.get(back.path, dict(parse_qsl(back.query)))
    assert answer.status_code == 302
    return XeroConnection.objects.get(company=company)


def test_connect_sync_map_validate_and_a_removed_connection(admin_client, local_xero):
    company = make_company(name="Sandbox Xero Ltd")
    tenant = local_xero.tenant
    connection = connect(admin_client, company, [tenant])
    assert str(connection.tenant_id) == tenant.id and connection.status == "ok"
    assert connection.base_currency and "accounting.manualjournals" in connection.scopes
    account = XeroAccount.objects.filter(connection=connection, status="ACTIVE").first()
    tax = XeroTaxRate.objects.filter(connection=connection, status="ACTIVE").first()
    assert account is not None and tax is not None

    item = {
        "accountingEntryLines": [
            {"account": {"code": account.code, "name": account.name}, "tax": {"code": "NOPE"}}
        ],
        "contraAccount": None,
    }
    adapter = get_adapter("xero", company=company)
    request = BookingRequest(item=item, idempotency_key="k1", pleo_job_id="j1")
    first = adapter.precheck(request)
    assert first.failure_type == ItemFailureReasonType.ACCOUNT_UNKNOWN
    stored(company, item)  # as the lifecycle stores every item it fetched
    assert xero_mapping.xero_mapping_propose(company=company) == 1  # the account matched
    second = adapter.precheck(request)
    assert (
        second.failure_type == ItemFailureReasonType.TAX_CODE_UNKNOWN and "NOPE" in second.message
    )

    assert adapter.check_connection().ok
    assert adapter.validate(job=None).ok  # selectable: it books

    local_xero.state.revoke_connection(str(connection.connection_id))
    removed = adapter.validate(job=None)
    assert removed.failure_type == JobFailureReasonType.ACCOUNTING_SYSTEM_AUTHENTICATION_FAILURE
    connection.refresh_from_db()
    assert connection.status == XeroConnection.Status.NEEDS_REAUTHORISATION
    page = admin_client.get(reverse("admin:exports_company_change", args=[company.pk]))
    assert 'id="xero-reauthorise"' in page.content.decode()


def test_two_organisations_one_chosen_then_synced(admin_client, local_xero):
    company = make_company(name="Group Ltd")
    first, second = local_xero.state.tenants()[:2]
    connection = connect(admin_client, company, [first, second])
    assert connection.tenant_id is None and len(connection.tenant_choices) == 2
    admin_client.post(
        reverse("admin:exports_company_xero_tenant", args=[company.pk]), {"tenant_id": second.id}
    )
    connection.refresh_from_db()
    assert str(connection.tenant_id) == second.id and connection.last_sync_at is not None
    assert XeroAccount.objects.filter(connection=connection).exists()


def test_a_sync_waits_for_the_minute_a_little_and_stops_with_a_message_when_a_run_holds_it(
    admin_client,
    local_xero,
):
    """Our minute budget's burst (5) is spent by connecting (``/connections`` and the first
    sync); a sync with contacts right after waits up to ``INTERACTIVE_BUDGET_WAIT`` a call (the
    steady 50 a minute: 1.2 s) and succeeds; a minute held longer than that (a run booking at the
    minute's pace) stops it with a message, nothing sent, instead of an error page."""
    company = make_company(name="Busy Ltd")
    connection = connect(admin_client, company, [local_xero.tenant])
    sent = len(local_xero.state.requests())
    local_xero.waits.waits.clear()
    rate = xero_connections.XERO_BUDGET
    result = xero_sync.xero_sync_run(connection=connection, include_contacts=True)
    assert result.ok, result.message
    assert local_xero.waits.waits  # it waited: the burst had gone to connecting
    assert all(w <= xero_connections.INTERACTIVE_BUDGET_WAIT for w in local_xero.waits.waits)
    assert sum(local_xero.waits.waits) >= rate.interval  # at least one call at the steady pace
    assert len(local_xero.state.requests()) - sent == 5  # four reads and one page of contacts

    key = f"xero_tenant:{connection.tenant_id}"
    held = xero_connections.INTERACTIVE_BUDGET_WAIT + 10  # the budget's clock: VirtualWaits
    RequestBudget.objects.filter(key=key).update(tat=local_xero.waits.now() + rate.tolerance + held)
    sent = len(local_xero.state.requests())
    result = xero_sync.xero_sync_run(connection=connection, include_contacts=True)
    assert not result.ok and "Sync from Xero stopped" in result.message
    assert "xero_tenant" in result.message and "Sync again later" in result.message
    assert len(local_xero.state.requests()) == sent  # nothing sent past the refusal
    connection.refresh_from_db()
    assert connection.last_sync_result == result.message  # what the admin shows
