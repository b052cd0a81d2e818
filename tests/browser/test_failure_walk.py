"""The three failures that used to look like success, as an operator sees
them in a real Chromium (1400 px, and one page at 390 px).

Three companies, one failure each, produced against the Pleo sandbox over real HTTP as in
``tests/test_failures_visible.py``:

- **expiry mid-export**: Pleo's clock passes the job's expiry while an item is booked;
- **repeated 429**: every read of the job's items is rate-limited, five runs in a row;
- **a 5xx**: Pleo answers 503 to the ``started`` event every time.

The runs are made in this process (``company_check_run``, what the worker's task calls) so the
faults, the retry settings and the clock are the test's; the live web server and the real worker
(``tests.browser.test_admin_in_chromium.live``) serve the pages from the same test database. Then
the index, each company page and each job page are read as an operator would.

With ``UPDATE_SCREENSHOTS=1`` the screenshots go to ``docs/screenshots/`` (the README shows
them). Slow (a web server, a worker, the sandbox, about ten page loads): ``--run-slow``.
"""

from __future__ import annotations

import uuid

import pytest

from tests.browser.pages import log_in, new_page, own_connections_closed, page_width
from tests.browser.test_admin_in_chromium import browser, live, shot  # noqa: F401
from tests.factories import make_company, make_credential

pytestmark = [
    pytest.mark.browser,
    pytest.mark.subprocess,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

EXPORT_ITEMS = "/v3/export-items"
EVENTS = "/v3/export-job-events"
DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}
SLACK = 10  # px, as in test_narrow_screens


def test_the_three_failures_read_as_failures_on_the_index_company_and_job_pages(
    browser,  # noqa: F811
    live,  # noqa: F811
    pleo_sandbox,
    settings,
    monkeypatch,
):
    settings.PLEO_MAX_ATTEMPTS = 2
    settings.PLEO_BACKOFF_BASE = 0
    settings.PLEO_BACKOFF_MAX = 0
    settings.PLEO_RETRY_AFTER_CAP = 0  # a 429 fails at once (no sleeping in tests)
    settings.RECOVERY_RETRY_SECONDS = 60
    with own_connections_closed():
        scene = _failures(pleo_sandbox, monkeypatch)
        _walk(browser, live, scene)


def _company(state, sandbox_url: str, name: str, currency: str):
    remote = state.add_company(name, currency=currency)
    key = state.add_api_key(remote.id)
    credential = make_credential(name=f"{name} key", api_key=key.key, api_base_url=sandbox_url)
    company = make_company(name=name, pleo_company_id=uuid.UUID(remote.id), credential=credential)
    return remote, company


def _run(company, **kwargs):
    from exports.models import Company, Trigger
    from exports.services.start_flow import company_check_run

    fresh = Company.objects.get(pk=company.pk)
    return company_check_run(company=fresh, trigger=Trigger.SCHEDULE, **kwargs)


def _failures(pleo_sandbox, monkeypatch) -> dict:
    from exports.adapters.journal import JournalAdapter
    from exports.models import ExportJob
    from exports.services.start_flow import Outcome

    state, url = pleo_sandbox.state, pleo_sandbox.url
    scene = {}

    # Repeated 429: the first run pauses the job on it, four recovery runs meet it again.
    remote, company = _company(state, url, "Fjordkraft Regnskab A/S", "NOK")
    job_id = state.create_job(remote.id, 2, notify=False, expires_in=6 * 3600)["id"]
    fault = state.add_fault("rate_limit", "GET", EXPORT_ITEMS, count=None)
    assert _run(company).outcome == Outcome.STARTED
    for _ in range(4):
        assert _run(company, recover=True).outcome == Outcome.RESUMED
    state.remove_fault(fault.id)
    scene["rate_limited"] = (company, ExportJob.objects.get(pleo_job_id=job_id))

    # A 5xx: Pleo answers 503 to every 'started' event, the run fails.
    remote, company = _company(state, url, "Solvik Bygg AS", "NOK")
    job_id = state.create_job(remote.id, 1, notify=False)["id"]
    fault = state.add_fault(
        "status", "POST", EVENTS, status=503, count=None, body_match={"event": "started"}
    )
    assert _run(company).outcome == Outcome.FAILED
    state.remove_fault(fault.id)
    scene["server_error"] = (company, ExportJob.objects.get(pleo_job_id=job_id))

    # Expiry mid-export (last: it moves Pleo's clock on by more than an hour).
    remote, company = _company(state, url, "Nordlys ApS", "DKK")
    job_id = state.create_job(remote.id, 2, notify=False)["id"]
    book_batch = JournalAdapter.book_batch  # the lifecycle books the journal in batches

    def booked_while_pleo_expires_the_job(self, requests):
        state.advance_clock(4000)
        return book_batch(self, requests)

    with monkeypatch.context() as patch:
        patch.setattr(JournalAdapter, "book_batch", booked_while_pleo_expires_the_job)
        assert _run(company).outcome == Outcome.JOB_EXPIRED
    scene["expired"] = (company, ExportJob.objects.get(pleo_job_id=job_id))
    return scene


def _text(page, selector: str) -> str:
    return " ".join(page.inner_text(selector).split())


def _walk(chromium, base: str, scene: dict) -> None:
    page = new_page(chromium, viewport=DESKTOP)
    errors: list[str] = []  # any 4xx/5xx the browser meets
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    log_in(page, base)

    # --- the index: three failing companies, none of them "fine" ---
    expired, expired_job = scene["expired"]
    limited, limited_job = scene["rate_limited"]
    broken, broken_job = scene["server_error"]

    def row(company) -> str:
        return _text(page, f"#export-status tr[data-company='{company.pk}']")

    failures = _text(page, "#status-failures")
    assert failures != "0 failures in the last day", failures
    assert "bad" in (page.get_attribute("#status-failures", "class") or "")

    text = row(expired)
    assert "Job expired in Pleo" in text, text
    assert "Nothing pending" not in text, text
    assert "⚠ The job expired in Pleo" in text, text
    failures_cell = _text(
        page, f"#export-status tr[data-company='{expired.pk}'] td[data-label='Failures (24 h)']"
    )
    assert int(failures_cell) > 0, failures_cell

    text = row(limited)
    assert "⚠" in text and "5 attempts" in text and "next retry at" in text, text
    assert "429" in text, text

    text = row(broken)
    assert "Failed" in text, text
    assert "'started' was sent 3 times with no known outcome" in text, text
    shot(page, "failure-index")
    width = page_width(page)  # the reasons wrap: no page running off a desktop screen
    assert width <= DESKTOP["width"] + SLACK, f"index {width} px wide at {DESKTOP['width']} px"

    # --- expiry mid-export: an Error with Pleo's reason and what to do ---
    page.goto(f"{base}/admin/exports/company/{expired.pk}/change/")
    outcome = _text(page, ".field-last_check_result .readonly")
    assert outcome == "Job expired in Pleo", outcome  # words, not a code; not "Nothing pending"
    error = _text(page, ".field-last_check_error .readonly")
    assert "job_expired" in error and "Ask the bookkeeper to export again from Pleo" in error, error
    assert "0 items were booked and reported, 2 were not" in error, error
    audit = _text(page, ".field-recent_audit")
    assert "job_ended" in audit and "Error" in audit, audit
    shot(page, "failure-expired-company")

    page.goto(f"{base}/admin/exports/exportjob/{expired_job.pk}/change/")
    body = _text(page, "#content")
    assert "job_expired" in body, body[:2000]
    assert "export again from Pleo" in body, body[:2000]
    assert "The job expired in Pleo while reporting item outcomes" in body, body[:2000]
    shot(page, "failure-expired-job")

    # --- repeated 429: failing since …, 5 attempts, next retry at …, last error … ---
    page.goto(f"{base}/admin/exports/company/{limited.pk}/change/")
    failing = _text(page, ".field-failing_state .readonly")
    assert failing.startswith("⚠ Failing since"), failing
    assert "5 attempts, next retry at" in failing and "last error: Pleo call failed: 429" in failing
    error = _text(page, ".field-last_check_error .readonly")
    assert "429" in error, error  # never "resumed" with no error while failing
    assert str(limited_job.pleo_job_id) in _text(page, ".field-recent_jobs")
    shot(page, "failure-429-company")

    page.goto(f"{base}/admin/exports/exportjob/{limited_job.pk}/change/")
    failing = _text(page, ".field-failing_state .readonly")
    assert failing.startswith("⚠ Failing since"), failing
    assert "5 attempts, next retry at" in failing and "429" in failing, failing
    shot(page, "failure-429-job")

    # --- a 5xx: the failed outcome with its reason, never "Last check error: -" ---
    page.goto(f"{base}/admin/exports/company/{broken.pk}/change/")
    outcome = _text(page, ".field-last_check_result .readonly")
    assert outcome == "Failed", outcome
    error = _text(page, ".field-last_check_error .readonly")
    assert error != "-" and "'started' was sent 3 times with no known outcome" in error, error
    assert "last answer: 503 SERVICE_UNAVAILABLE" in error, error  # what Pleo said
    audit = _text(page, ".field-recent_audit")
    assert "start_unknown" in audit, audit
    shot(page, "failure-5xx-company")

    page.goto(f"{base}/admin/exports/exportjob/{broken_job.pk}/change/")
    body = _text(page, "#content")
    assert "start_unknown" in body, body[:2000]
    shot(page, "failure-5xx-job")

    # --- on a phone: the failing company still reads as failing, and fits the screen ---
    page.set_viewport_size(PHONE)
    page.goto(f"{base}/admin/exports/company/{limited.pk}/change/")
    failing = _text(page, ".field-failing_state .readonly")
    assert failing.startswith("⚠ Failing since") and "5 attempts" in failing, failing
    width = page_width(page)
    shot(page, "failure-429-company-narrow")
    assert width <= PHONE["width"] + SLACK, f"company page {width} px wide at 390 px"
    assert errors == [], errors
