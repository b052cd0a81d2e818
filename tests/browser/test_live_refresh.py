"""Live refresh in a real Chromium: after "Check now" the company page follows the check the real
worker runs and shows its outcome without a reload (the previous run's error goes away), and the
message links to what to follow. Slow (a web server, a worker and the sandbox): ``--run-slow``."""

from __future__ import annotations

import pytest

from tests.browser.pages import log_in, new_page, own_connections_closed
from tests.browser.test_admin_in_chromium import browser, live, shot  # noqa: F401
from tests.factories import make_sandbox_company

pytestmark = [
    pytest.mark.browser,
    pytest.mark.subprocess,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def test_the_company_page_follows_check_now_without_a_reload(browser, live, pleo_sandbox):  # noqa: F811
    with own_connections_closed():
        _story(browser, live, pleo_sandbox)


def _story(chromium, base, pleo_sandbox):
    from exports.models import Company

    remote, company = make_sandbox_company(pleo_sandbox, name="Fjord AS", currency="NOK")
    pleo_sandbox.state.create_job(remote.id, {"normal": 2}, notify=False)
    Company.objects.filter(pk=company.pk).update(
        last_check_outcome="failed", last_check_error="Pleo is unreachable: 503 (an old run)"
    )

    page = new_page(chromium, viewport={"width": 1400, "height": 900})
    log_in(page, base)

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
