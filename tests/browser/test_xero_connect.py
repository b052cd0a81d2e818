"""Connecting a company to Xero in a real Chromium: the company page's "Connect Xero", the local
Xero's consent page (an organisation ticked, "Allow access"), back on the company page connected
and synced. Against a live web server and the Xero sandbox (in this process, over real HTTP).
Skipped with a reason when Chromium or Playwright is missing (see test_admin_in_chromium)."""

from __future__ import annotations

import pytest

from tests import processes
from tests.browser.test_admin_in_chromium import (  # noqa: F401
    PASSWORD,
    browser,
    log_in,
    shot,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.subprocess,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def live_with_xero(xero_sandbox, product_env, tmp_path, settings, django_user_model):
    port = processes.free_port()
    base = f"http://127.0.0.1:{port}"
    client = xero_sandbox.state.add_oauth_client(
        redirect_uris=[f"{base}/oauth/xero/callback/"], name="Export bridge"
    )
    env = {k: v for k, v in product_env.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(
        {
            "PUBLIC_BASE_URL": base,
            "XERO_SANDBOX": "1",
            "XERO_CLIENT_ID": client.client_id,
            "XERO_CLIENT_SECRET": client.client_secret,
            "XERO_API_BASE_URL": xero_sandbox.url,
            "XERO_IDENTITY_BASE_URL": xero_sandbox.url,
            "XERO_LOGIN_BASE_URL": xero_sandbox.url,
        }
    )
    django_user_model.objects.create_superuser("operator", "ops@example.com", PASSWORD)
    web = processes.start(
        processes.manage("runserver", f"127.0.0.1:{port}", "--noreload"), env, tmp_path / "web.log"
    )
    try:
        processes.wait_http(f"{base}/healthz")
        yield base, client
    finally:
        processes.stop(web)
        assert "Traceback" not in processes.output(web), processes.output(web)[-4000:]


def test_operator_connects_a_company_to_xero(browser, live_with_xero, xero_sandbox):  # noqa: F811
    from django.db import connections

    try:
        _connect_story(browser, *live_with_xero, xero_sandbox)
    finally:
        connections.close_all()


def _connect_story(browser, base, client, xero_sandbox):  # noqa: F811
    from exports.models import XeroConnection
    from tests.factories import make_company

    company = make_company(name="Fjord Xero ApS")
    tenant = xero_sandbox.tenant
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page.set_default_timeout(20_000)
    log_in(page, base)
    page.goto(f"{base}/admin/exports/company/{company.pk}/change/")
    assert "not connected to Xero" in page.inner_text("#xero-panel")
    page.click("#xero-connect")
    page.wait_for_selector("text=wants to access your Xero data")
    assert page.url.startswith(xero_sandbox.url + "/identity/connect/authorize")
    page.check(f"input[name=tenant][value='{tenant.id}']")
    page.click("button[value=allow]")
    page.wait_for_selector("#xero-status")
    shot(page, "xero-connected")
    status = page.inner_text("#xero-panel")
    assert "Connected to Xero organisation" in status and "Last sync" in status
    assert client.client_secret not in page.content()
    connection = XeroConnection.objects.get(company=company)
    assert str(connection.tenant_id) == tenant.id and connection.accounts.exists()
    assert connection.access_token not in page.content()
