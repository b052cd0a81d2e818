"""The admin as a person uses it, in a real Chromium (Playwright driving Debian's ``chromium``),
against a live web server, a real ``qcluster`` worker and the Pleo sandbox: log in, add a
credential and a company with its API key through the admin forms, press "Check now", see the job
started and carried to its end with its audit trail, open the journal. With
``UPDATE_SCREENSHOTS=1`` the screenshots go to ``docs/screenshots/`` (the README shows the best
ones); otherwise to a temporary folder.

Skipped with a reason when ``/usr/bin/chromium`` or Playwright is missing; ``REQUIRE_SERVICES=1``
(CI) turns that into a failure. Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest

from tests import processes
from tests.browser.pages import PASSWORD, log_in, new_page, own_connections_closed
from tests.fixtures.services import skip_or_fail

pytestmark = [
    pytest.mark.browser,
    pytest.mark.subprocess,
    pytest.mark.django_db(transaction=True),
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The README's pictures are refreshed on demand (UPDATE_SCREENSHOTS=1); an ordinary run writes
# them beside the other temporary files, so running the tests leaves the checkout clean.
SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "pleo-export-bridge-screenshots"
)


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are
    # plain synchronous ones, so Django's async-safety guard is lifted for it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not os.path.exists(CHROMIUM):
        skip_or_fail(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("Playwright for Python is not installed (requirements-dev.txt)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def live(pleo_sandbox, product_env, tmp_path, settings, django_user_model):
    """Web server and worker on the test database; an admin login."""
    port = processes.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in product_env.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update({"PUBLIC_BASE_URL": base, "Q_WORKERS": "1"})
    settings.PUBLIC_BASE_URL = base
    django_user_model.objects.create_superuser("operator", "ops@example.com", PASSWORD)
    web = processes.start(
        processes.manage("runserver", f"127.0.0.1:{port}", "--noreload"), env, tmp_path / "web.log"
    )
    worker = processes.start(processes.manage("qcluster"), env, tmp_path / "worker.log")
    try:
        processes.wait_http(f"{base}/healthz")
        yield base
    finally:
        for process in (web, worker):
            processes.stop(process)
        for process in (web, worker):
            assert "Traceback" not in processes.output(process), processes.output(process)[-4000:]


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_operator_adds_a_company_checks_now_and_reads_the_audit_and_journal(
    browser, live, pleo_sandbox
):
    with own_connections_closed():
        _operator_story(browser, live, pleo_sandbox)


def _operator_story(browser, live, pleo_sandbox):
    from exports.models import Company, ExportJob

    state = pleo_sandbox.state
    remote = state.add_company("Nordlys ApS", currency="DKK")
    key = state.add_api_key(remote.id)
    job = state.create_job(remote.id, {"normal": 3, "foreign": 1, "refund": 1}, notify=False)

    page = new_page(browser, viewport={"width": 1360, "height": 900})
    not_found: list[str] = []  # every 404 the browser meets (headless fetches no favicon)
    page.on("response", lambda r: not_found.append(r.url) if r.status == 404 else None)

    log_in(page, live)

    # A credential with the API key (the key is write-only: never shown back).
    page.goto(f"{live}/admin/exports/credential/add/")
    page.fill("#id_name", "Nordlys API key")
    page.select_option("#id_kind", "api_key")
    page.fill("#id_api_key", key.key)
    page.fill("#id_api_base_url", pleo_sandbox.url)
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    assert "accepted the credential" in page.inner_text(".messagelist")  # tested on save
    assert key.key not in page.content()

    # Its page: the status banner at the top, and Test connection asks Pleo again.
    page.click("text=Nordlys API key")
    page.wait_for_selector("#credential-status-banner .success")
    page.get_by_role("button", name="Test connection").click()
    page.wait_for_selector(".messagelist .success")
    assert "accepted the credential" in page.inner_text(".messagelist")

    # The company, with that credential and the journal adapter.
    page.goto(f"{live}/admin/exports/company/add/")
    page.fill("#id_name", "Nordlys ApS")
    page.fill("#id_pleo_company_id", remote.id)
    page.select_option("#id_credential", label="Nordlys API key (API key)")
    page.select_option("#id_accounting_adapter", "journal")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    company = Company.objects.get(name="Nordlys ApS")

    # Check now: the worker runs the flow and carries the job to its end.
    page.get_by_role("button", name="Check now", exact=True).click()
    page.wait_for_selector(".messagelist .success")
    assert "queued for a check" in page.inner_text(".messagelist")
    shot(page, "company-check-now")

    def finished():
        company.refresh_from_db()
        return company.last_check_outcome in ("completed", "failed", "completed_with_errors")

    processes.wait_until(finished, timeout=60, message="the worker's check")
    assert company.last_check_outcome == "completed", company.last_check_error
    assert state.get_job(job["id"])["job"]["status"] == "completed"

    # The job and its audit trail.
    local = ExportJob.objects.get(pleo_job_id=job["id"])
    page.goto(f"{live}/admin/exports/exportjob/")
    page.click(f"text={str(local.pleo_job_id)}")
    page.wait_for_selector("text=Pleo accepted 'started'")
    audit_text = page.inner_text("body")
    for step in ("selected", "started", "validated", "items_reported", "completed"):
        assert step in audit_text, step
    shot(page, "job-audit-trail")

    # The journal: five balanced entries for the job.
    page.goto(f"{live}/admin/exports/journalentry/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 5
    assert re.search(r"JE-\d{6}", page.inner_text("#result_list"))
    shot(page, "journal")
    rows.first.locator("th a, td a").first.click()
    page.wait_for_selector("text=Contra account")
    shot(page, "journal-entry")

    # The index: the at-a-glance status with the company's last check.
    page.goto(f"{live}/admin/")
    page.wait_for_selector(f"#export-status tr[data-company='{company.pk}']")
    assert "Completed" in page.inner_text(f"#export-status tr[data-company='{company.pk}']")
    shot(page, "admin-index-status")
    assert not_found == [], not_found
