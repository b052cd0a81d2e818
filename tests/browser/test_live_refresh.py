"""Live refresh in a real Chromium: after "Check now" the company page follows the check the real
worker runs and shows its outcome without a reload (the previous run's error goes away), and the
message links to what to follow. Slow (a web server, a worker and the sandbox): ``--run-slow``."""

from __future__ import annotations

import uuid

import pytest

from tests.browser.test_admin_in_chromium import PASSWORD, browser, live, shot  # noqa: F401
from tests.factories import make_company, make_credential

pytestmark = [
    pytest.mark.browser,
    pytest.mark.subprocess,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def test_the_company_page_follows_check_now_without_a_reload(browser, live, pleo_sandbox):  # noqa: F811
    from django.db import connections

    try:
        _story(browser, live, pleo_sandbox)
    finally:
        connections.close_all()


def _story(chromium, base, pleo_sandbox):
    from exports.models import Company

    state = pleo_sandbox.state
    remote = state.add_company("Fjord AS", currency="NOK")
    key = state.add_api_key(remote.id)
    state.create_job(remote.id, {"normal": 2}, notify=False)
    credential = make_credential(name="Fjord key", api_key=key.key, api_base_url=pleo_sandbox.url)
    company = make_company(
        name="Fjord AS", pleo_company_id=uuid.UUID(remote.id), credential=credential
    )
    Company.objects.filter(pk=company.pk).update(
        last_check_outcome="failed", last_check_error="Pleo is unreachable: 503 (an old run)"
    )

    page = chromium.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(20_000)
    page.goto(f"{base}/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#export-status")

    page.goto(f"{base}/admin/exports/company/{company.pk}/change/")
    assert "an old run" in page.inner_text(".field-last_check_error .readonly")
    page.get_by_role("button", name="Check now", exact=True).click()
    page.wait_for_selector(".messagelist .success a")
    assert "Follow" in page.inner_text(".messagelist")
    shot(page, "company-check-queued")

    # No reload from here: the page's script polls the status view until the check is done.
    page.wait_for_function(
        "document.querySelector('.field-last_check_result .readonly').textContent.trim()"
        " === 'Completed'",
        timeout=60_000,
    )
    assert page.inner_text(".field-last_check_error .readonly").strip() == "-"
    assert page.get_attribute("#live-status", "data-live-active") == "0"
    shot(page, "company-check-followed")
