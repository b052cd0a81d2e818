"""Settle by hand, preview and reconciliation as an operator sees them in a real Chromium.

Three companies against the Pleo sandbox over real HTTP; the exports are run in this process
(``company_check_run``), the pages are served by the live web server from the same test database:

- **settle by hand**: a job with an item without an account ends ``completed_with_errors``; in the
  item list the operator marks the failed item "booked by hand" and gives the reference on the
  confirmation page; Pleo exports the expense again and it is reported with that reference;
- **preview**: "Preview next job" on a company page runs the dry run of a pending job and shows
  the item that would fail, why and where to fix it (the web server makes the Pleo calls);
- **reconciliation**: after an export, one journal entry is deleted and one edited; the company's
  reconciliation page for today flags both.

With ``UPDATE_SCREENSHOTS=1`` the screenshots go to ``docs/screenshots/`` (``settle-confirm``,
``preview-report``, ``reconciliation``; the README shows them). Slow: ``--run-slow``.
"""

from __future__ import annotations

import uuid

import pytest

from tests.browser.test_admin_in_chromium import browser, live, log_in, shot  # noqa: F401
from tests.factories import make_company, make_credential

pytestmark = [
    pytest.mark.browser,
    pytest.mark.subprocess,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

DESKTOP = {"width": 1400, "height": 900}


def test_settle_preview_and_reconcile_in_the_admin(browser, live, pleo_sandbox):  # noqa: F811
    from django.db import connections

    try:
        _walk(browser, live, pleo_sandbox)
    finally:
        connections.close_all()  # Playwright's greenlet opened its own connection


def _company(state, sandbox_url: str, name: str):
    remote = state.add_company(name, currency="DKK")
    key = state.add_api_key(remote.id)
    credential = make_credential(name=f"{name} key", api_key=key.key, api_base_url=sandbox_url)
    company = make_company(name=name, pleo_company_id=uuid.UUID(remote.id), credential=credential)
    return remote, company


def _run(company):
    from exports.models import Company, Trigger
    from exports.services.start_flow import company_check_run

    return company_check_run(company=Company.objects.get(pk=company.pk), trigger=Trigger.SCHEDULE)


def _walk(chromium, base: str, sandbox) -> None:
    from exports import clock
    from exports.models import ExportItemRecord, JournalEntry, JournalLine
    from exports.services.start_flow import Outcome

    state = sandbox.state
    page = chromium.new_page(viewport=DESKTOP)
    page.set_default_timeout(20_000)
    log_in(page, base)

    # --- settle by hand ---
    remote, settled = _company(state, sandbox.url, "Havbris Regnskab ApS")
    state.create_job(remote.id, ["normal", "missing_account"], notify=False)
    assert _run(settled).outcome == Outcome.COMPLETED_WITH_ERRORS
    failed = ExportItemRecord.objects.get(
        export_job__company=settled, result=ExportItemRecord.Result.FAILED
    )
    page.goto(f"{base}/admin/exports/exportitemrecord/?result__exact=failed")
    page.check(f"input[name=_selected_action][value='{failed.pk}']")
    page.select_option("select[name=action]", "mark_booked_by_hand")
    page.click("button[name=index]")
    page.fill(f"#id_reference_{failed.pk}", "V-2026-0117")
    shot(page, "settle-confirm")
    page.click("#settle-confirm input[type=submit]")
    page.wait_for_selector(".messagelist .success")
    again = state.create_job(
        remote.id,
        ["missing_account"],
        accounting_entry_ids=[str(failed.accounting_entry_id)],
        notify=False,
    )["id"]
    assert _run(settled).outcome == Outcome.COMPLETED
    item = state.get_job(again)["items"][0]
    assert (item["status"], item["externalId"]) == ("successful", "V-2026-0117")

    # --- preview ---
    remote, previewed = _company(state, sandbox.url, "Lysegrøn Design A/S")
    job_id = state.create_job(remote.id, ["normal", "normal", "missing_account"], notify=False)[
        "id"
    ]
    page.goto(f"{base}/admin/exports/company/{previewed.pk}/change/")
    page.click("#preview-next-job")
    page.click("#preview-run input[type=submit]")
    page.wait_for_selector("#preview-report")
    assert page.get_attribute("#preview-report", "data-status") == "fails"
    text = " ".join(page.inner_text("#preview-items").split())
    assert "account_unknown" in text and "the expense in Pleo" in text, text
    assert state.get_job(job_id)["job"]["status"] == "pending"
    shot(page, "preview-report")

    # --- reconciliation ---
    remote, reconciled = _company(state, sandbox.url, "Skovly Revision ApS")
    state.create_job(remote.id, 3, notify=False)
    assert _run(reconciled).outcome == Outcome.COMPLETED
    deleted, changed, _ = JournalEntry.objects.filter(company=reconciled).order_by("pk")
    deleted.delete()
    line = changed.lines.filter(kind=JournalLine.Kind.EXPENSE).first()
    JournalLine.objects.filter(pk=line.pk).update(account_code="9999")
    today = clock.now().date().isoformat()
    page.goto(f"{base}/admin/exports/company/{reconciled.pk}/change/")
    page.click("#reconciliation")
    page.fill("#id_date_from", today)
    page.fill("#id_date_to", today)
    page.click("#reconcile-form input[type=submit]")
    page.wait_for_selector("#reconciliation-report")
    assert page.get_attribute("#reconciliation-report", "data-ok") == "no"
    rows = " ".join(page.inner_text("#reconciliation-rows").split())
    assert "missing" in rows and "changed" in rows, rows
    shot(page, "reconciliation")
