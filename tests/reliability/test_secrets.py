"""Scenario 7: after a full run, no secret on any admin page (and none in the DEBUG logs).

A run with everything that handles a secret: API-key companies (one of whose keys Pleo then
refuses), an OAuth credential with its client secret and tokens stored, signed webhooks through
the real view, jobs carried to their end, a fault. Then every admin page an operator can open
for credentials, companies, jobs, audit entries, webhook deliveries, the journal and worker
heartbeats (lists and change pages, the journal CSV) is rendered as a superuser: none shows an
API key, token, client secret, webhook secret or signature, whole or in its base64 core. The
suite's autouse check (``tests/conftest.py``) does the same for every log record, at DEBUG.
"""

from __future__ import annotations

import base64
import secrets
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from exports.models import (
    AuditEntry,
    Company,
    Credential,
    ExportJob,
    JournalEntry,
    Trigger,
    WebhookDelivery,
)
from exports.services.companies import company_add_or_update, webhook_endpoint_ensure
from exports.services.start_flow import company_check_run
from tests import secrets_registry
from tests.reliability import support
from tests.reliability.inprocess import SyncQueue
from tests.reliability.profile import record

pytestmark = pytest.mark.django_db


def _secret_forms(value: str) -> set[str]:
    """A secret and the parts of it that identify it alone (the key behind ``whsec_``, the
    digest behind ``v1,``)."""
    forms = {value}
    for prefix in ("whsec_", "v1,"):
        if value.startswith(prefix):
            forms.add(value[len(prefix) :])
    return {form for form in forms if len(form) >= 12}


def test_no_secret_on_any_admin_page_after_a_full_run(
    pleo_sandbox, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.PUBLIC_BASE_URL = "https://bridge.example"
    settings.PLEO_MAX_ATTEMPTS = 2
    settings.PLEO_BACKOFF_BASE = 0
    settings.PLEO_BACKOFF_MAX = 0
    queue = SyncQueue()
    monkeypatch.setattr("exports.services.dispatch.async_task", queue.async_task)
    state = pleo_sandbox.state
    made: set[str] = set()

    def secret(value: str) -> str:
        made.add(secrets_registry.register(value))
        return value

    companies = []
    for i in range(2):
        remote = state.add_company(f"Secretive {i}")
        key = state.add_api_key(remote.id)
        whsec = secret("whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())
        saved = company_add_or_update(
            name=f"Secretive {i}",
            pleo_company_id=uuid.UUID(remote.id),
            api_key=secret(key.key),
            api_base_url=pleo_sandbox.url,
            webhook_secret=whsec,
        )
        companies.append((remote, key, whsec, saved))
    oauth = Credential(name="OAuth app", kind=Credential.Kind.OAUTH, oauth_client_id="client-123")
    oauth.oauth_client_secret = secret(f"cs_{secrets.token_urlsafe(24)}")
    oauth.access_token = secret(f"at_{secrets.token_urlsafe(32)}")
    oauth.refresh_token = secret(f"rt_{secrets.token_urlsafe(32)}")
    oauth.save()
    webhook_endpoint_ensure(credential=oauth)
    Company.objects.create(
        name="OAuth company", pleo_company_id=uuid.uuid4(), credential=oauth, active=False
    )

    # The run: webhooks through the view, jobs carried to their end, a fault, a refused key.
    client = Client()
    for remote, _key, whsec, saved in companies:
        for _ in range(2):
            job = state.create_job(remote.id, 2, notify=False)
            body, headers = support.signed_delivery(whsec, job)
            secret(headers["webhook-signature"])
            with django_capture_on_commit_callbacks(execute=True):  # the enqueue, on commit
                response = client.post(
                    saved.endpoint.path,
                    data=body,
                    content_type="application/json",
                    headers=headers,
                )
            assert response.status_code == 200
    state.add_fault("status", "PUT", "/v3/export-jobs/{jobId}/items", status=503, count=1)
    ran = queue.drain()
    assert ran == 2  # one coalesced check per company
    for _remote, _key, _whsec, saved in companies:
        company_check_run(company=Company.objects.get(pk=saved.company.pk), trigger=Trigger.MANUAL)
    state.revoke(companies[1][1].id)
    state.create_job(companies[1][0].id, 1, notify=False)
    refused = company_check_run(
        company=Company.objects.get(pk=companies[1][3].company.pk), trigger=Trigger.MANUAL
    )
    assert refused.outcome == "failed"
    assert ExportJob.objects.filter(status="completed").count() == 4
    assert WebhookDelivery.objects.count() == 4

    # Every admin page an operator opens.
    admin = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-not-secret")
    browser = Client()
    browser.force_login(admin)
    pages = [
        "/admin/",
        "/admin/exports/credential/",
        "/admin/exports/company/",
        "/admin/exports/exportjob/",
        "/admin/exports/auditentry/",
        "/admin/exports/webhookdelivery/",
        "/admin/exports/journalentry/",
        "/admin/exports/journalentry/csv/",
        "/admin/exports/workerheartbeat/",
    ]
    for model, objects in (
        ("credential", Credential.objects.all()),
        ("company", Company.objects.all()),
        ("exportjob", ExportJob.objects.all()),
        ("auditentry", AuditEntry.objects.all()),
        ("webhookdelivery", WebhookDelivery.objects.all()),
        ("journalentry", JournalEntry.objects.all()[:3]),
    ):
        pages += [f"/admin/exports/{model}/{obj.pk}/change/" for obj in objects]
    forms = {form for value in made for form in _secret_forms(value)}
    leaks = []
    for page in pages:
        response = browser.get(page)
        assert response.status_code == 200, (page, response.status_code)
        text = response.content.decode(errors="replace")
        leaks += [(page, form[:6] + "…") for form in forms if form in text]
    record(
        "secrets.admin_pages",
        pages_rendered=len(pages),
        secrets_checked=len(made),
        forms_checked=len(forms),
        tasks_run=ran,
        leaks=len(leaks),
    )
    assert not leaks, leaks


def test_no_secret_in_the_error_report_of_a_failing_webhook(pleo_sandbox, settings, monkeypatch):
    """A crash while a verified webhook is handled: Django's error report (the 500 page in
    DEBUG, the mail to ADMINS otherwise) shows neither the signing secret nor the signature."""
    import sys

    from django.test import RequestFactory
    from django.views.debug import ExceptionReporter

    from exports import webhook_views

    settings.DEBUG = False
    seeded = support.seed_companies(pleo_sandbox, 1, prefix="Error report")
    remote, company = seeded.companies[0]
    whsec = secrets_registry.register("whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())
    endpoint = webhook_endpoint_ensure(credential=company.credential)
    from exports.services.companies import webhook_endpoint_add_secret

    webhook_endpoint_add_secret(endpoint=endpoint, secret=whsec)
    job = pleo_sandbox.state.create_job(remote.id, 1, notify=False)
    body, headers = support.signed_delivery(whsec, job)

    def boom(**kwargs):
        raise RuntimeError("storage failed")

    monkeypatch.setattr(webhook_views, "webhook_delivery_receive", boom)
    request = RequestFactory().post(
        endpoint.path,
        data=body,
        content_type="application/json",
        headers=headers,
    )
    try:
        webhook_views.pleo_webhook(request, endpoint_uuid=endpoint.uuid)
    except RuntimeError:
        exc_info = sys.exc_info()
    else:
        pytest.fail("the view did not raise")
    # From the view down, as Django's handler would report it (not this test's own frame).
    exc_type, exc_value, tb = exc_info
    reporter = ExceptionReporter(request, exc_type, exc_value, tb.tb_next)
    report = reporter.get_traceback_text() + reporter.get_traceback_html()
    forms = _secret_forms(whsec) | _secret_forms(headers["webhook-signature"])
    record("secrets.error_report", report_bytes=len(report), forms_checked=len(forms))
    assert "storage failed" in report  # the report is real
    assert reporter.filter.cleansed_substitute in report  # and it masked something
    assert not [form[:6] for form in forms if form in report]
