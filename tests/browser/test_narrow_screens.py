"""On a phone (390 px wide) the index, a job's page and a journal entry fit the
screen: no page, table or inline wider than the viewport (tables stack their rows, each cell
labelled), in a real Chromium against
a live web server. No worker and no sandbox: the rows are written straight to the test database,
so the walk takes a few seconds.

Skipped with a reason when ``/usr/bin/chromium`` or Playwright is missing (``REQUIRE_SERVICES=1``
turns that into a failure), as the other browser tests.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from tests import processes
from tests.browser.test_admin_in_chromium import PASSWORD, browser, shot  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.subprocess,
    pytest.mark.django_db(transaction=True),
]

PHONE = {"width": 390, "height": 844}
SLACK = 10  # px: a scrollbar or a rounding, not a table running off the screen


@pytest.fixture
def web(product_env, tmp_path, settings, django_user_model):
    """The web server alone on the test database; an admin login."""
    port = processes.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in product_env.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env["PUBLIC_BASE_URL"] = base
    django_user_model.objects.create_superuser("operator", "ops@example.com", PASSWORD)
    server = processes.start(
        processes.manage("runserver", f"127.0.0.1:{port}", "--noreload"), env, tmp_path / "web.log"
    )
    try:
        processes.wait_http(f"{base}/healthz")
        yield base
    finally:
        processes.stop(server)
        assert "Traceback" not in processes.output(server), processes.output(server)[-4000:]


def _scene():
    """A company with a job at risk of expiry, its items and a long audit trail; a credential to
    re-authorise; failures; the journal entries of the job."""
    from exports import clock
    from exports.models import (
        AuditEntry,
        Credential,
        ExportItemRecord,
        ExportJob,
        JournalEntry,
        JournalLine,
        Trigger,
    )
    from tests.factories import make_company, make_credential, make_job

    now = clock.now()
    company = make_company(name="Nordlys Byggeri og Anlæg ApS", last_check_outcome="resumed")
    company.last_check_at = now
    company.save(update_fields=["last_check_at"])
    make_company(
        name="Fjordkraft Regnskab A/S",
        credential=make_credential(
            name="Fjordkraft key", status=Credential.Status.NEEDS_REAUTHORISATION
        ),
    )
    job = make_job(
        company,
        status=ExportJob.Status.IN_PROGRESS,
        created_at=now - timedelta(minutes=50),
        last_updated_at=now - timedelta(minutes=50),
        claim=ExportJob.Claim.OURS,
        claimed_at=now - timedelta(minutes=49),
        number_of_items=3,
    )
    run_id = uuid.uuid4()
    steps = ["selected", "started", "validated", "items_fetched", "item_exported", "at_risk"]
    for number, step in enumerate(steps * 2):
        AuditEntry.objects.create(
            created_at=now - timedelta(minutes=49 - number),
            company=company,
            export_job=job,
            trigger=Trigger.WEBHOOK,
            step=step,
            message=f"Pleo accepted 'started' for job {job.pleo_job_id}; item {number} of the "
            "export was booked as JE-000042 in the local journal and reported to Pleo.",
            run_id=run_id,
            outcome=AuditEntry.Outcome.ERROR if step == "at_risk" else AuditEntry.Outcome.OK,
            http_method="PUT",
            http_path=f"/v3/export-jobs/{job.pleo_job_id}/items",
            http_status=200,
            worker="worker-0123456789abcdef@build-host.example.internal",
        )
    for number in range(3):
        entry = JournalEntry.objects.create(
            company=company,
            export_job=job,
            accounting_entry_id=uuid.uuid4(),
            idempotency_key=uuid.uuid4().hex,
            date=now.date(),
            currency="DKK",
            amount=195227,
            description="Expense – Byggemarked Nord – materials for the Aarhus site",
            created_at=now,
        )
        JournalLine.objects.create(
            entry=entry, position=1, kind="expense", account_code="4060", debit=195227
        )
        JournalLine.objects.create(
            entry=entry, position=2, kind="contra", account_code="5820", credit=195227
        )
        ExportItemRecord.objects.create(
            export_job=job,
            accounting_entry_id=entry.accounting_entry_id,
            idempotency_key=entry.idempotency_key,
            adapter="journal",
            state="reported",
            result="successful" if number else "failed",
            external_id=entry.number,
            failure_reason=""
            if number
            else "Line 1 has no expense account: choose a bookable "
            "account for it in Pleo and export the item again.",
            failure_reason_type="" if number else "account_unknown",
        )
    return company, job


def _width(page) -> int:
    """The page's width, or the widest table or inline on it if that is wider: Django's own
    narrow-screen style scrolls an inline sideways inside the page, which leaves the page narrow
    but the table as unreadable as before."""
    return page.evaluate(
        """() => Math.max(
            document.documentElement.scrollWidth,
            ...Array.from(document.querySelectorAll("#content table, #content .inline-group"))
                .map((el) => Math.max(el.scrollWidth, el.getBoundingClientRect().width))
        )"""
    )


def test_the_index_and_a_job_page_fit_a_phone(browser, web):  # noqa: F811
    from django.db import connections

    try:
        company, job = _scene()
        page = browser.new_page(viewport=PHONE)
        page.set_default_timeout(20_000)
        page.goto(f"{web}/admin/")
        page.fill("#id_username", "operator")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#export-status")

        index_width = _width(page)
        shot(page, "narrow-index")
        row = page.locator(f"#export-status tr[data-company='{company.pk}']")
        assert "Resumed a job" in row.inner_text()

        page.goto(f"{web}/admin/exports/exportjob/{job.pk}/change/")
        page.wait_for_selector("text=Pleo accepted 'started'")
        job_width = _width(page)
        shot(page, "narrow-job")
        limit = PHONE["width"] + SLACK
        assert index_width <= limit and job_width <= limit, (
            f"index {index_width} px, job page {job_width} px wide at {PHONE['width']} px"
        )
        # Stacked, each cell still says what it is.
        label = page.evaluate(
            "getComputedStyle(document.querySelector('.inline-group td.field-step'), "
            "'::before').content"
        )
        assert "Step" in label, label

        entry = job.journal_entries.order_by("pk").first()
        page.goto(f"{web}/admin/exports/journalentry/{entry.pk}/change/")
        page.wait_for_selector("text=Total debit")
        assert _width(page) <= limit, f"journal entry page {_width(page)} px wide"
        assert "4060 debit 1952.27 DKK" in page.inner_text(".inline-group")
    finally:
        connections.close_all()
