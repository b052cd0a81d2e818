"""A delivery's state follows the check it queued; "Reprocess" says what it did not do;
rejected webhooks are counted without a write per request and shown (counts and last time)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from exports import clock, tasks
from exports.models import Trigger, WebhookDelivery, WebhookRejectionCount
from exports.rejections import counter
from exports.services.start_flow import FlowResult, Outcome
from tests.factories import make_company, make_job
from tests.fixtures.webhooks import Hook, job_event

pytestmark = pytest.mark.django_db
State = WebhookDelivery.State


def _delivery(company, *, state=State.ENQUEUED, job_id=None, received_at=None) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        endpoint=company.credential.webhook_endpoint,
        webhook_id=f"msg_{uuid.uuid4().hex}",
        webhook_timestamp=clock.now(),
        event_type="v1.export-job.created",
        body="{}",
        received_at=received_at or clock.now() - timedelta(seconds=5),
        company=company,
        pleo_job_id=job_id or uuid.uuid4(),
        state=state,
    )


def _check_returns(monkeypatch, outcome: str, error: str = ""):
    def fake(*, company, trigger, recover, run_id):
        return FlowResult(company=company, outcome=outcome, run_id=run_id, error=error)

    monkeypatch.setattr("exports.tasks.company_check_run", fake)


def test_a_finished_check_marks_its_deliveries_processed(monkeypatch):
    company, other = make_company(name="Alpha"), make_company(name="Beta")
    mine, theirs = _delivery(company), _delivery(other)
    _check_returns(monkeypatch, Outcome.STARTED)

    tasks.run_company_check(company.pk, Trigger.WEBHOOK)

    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.state, mine.error) == (State.PROCESSED, "")
    assert theirs.state == State.ENQUEUED  # another company's check settles it


def test_a_failed_check_marks_its_deliveries_failed_with_the_reason(monkeypatch, admin_client):
    company = make_company(name="Alpha")
    delivery = _delivery(company)
    _check_returns(monkeypatch, Outcome.FAILED, "Pleo is unreachable: 503 Service Unavailable")

    tasks.run_company_check(company.pk, Trigger.WEBHOOK)

    delivery.refresh_from_db()
    assert delivery.state == State.FAILED
    assert "Pleo is unreachable: 503 Service Unavailable" in delivery.error
    listed = admin_client.get(
        reverse("admin:exports_webhookdelivery_changelist") + "?state__exact=failed"
    )
    assert delivery.webhook_id in listed.content.decode()


@pytest.mark.parametrize("outcome", [Outcome.BUSY, Outcome.DEFERRED])
def test_a_check_that_did_not_run_leaves_its_deliveries_enqueued(monkeypatch, outcome):
    company = make_company(name="Alpha")
    delivery = _delivery(company)
    _check_returns(monkeypatch, outcome)

    tasks.run_company_check(company.pk, Trigger.WEBHOOK)

    delivery.refresh_from_db()
    assert delivery.state == State.ENQUEUED


def test_a_delivery_received_after_the_check_was_picked_up_waits_for_the_next(monkeypatch):
    company = make_company(name="Alpha")
    later = _delivery(company, received_at=clock.now() + timedelta(minutes=1))
    _check_returns(monkeypatch, Outcome.NOTHING_PENDING)

    tasks.run_company_check(company.pk, Trigger.SCHEDULE)

    later.refresh_from_db()
    assert later.state == State.ENQUEUED


def test_a_poll_batch_reads_once_and_writes_only_for_companies_with_deliveries(monkeypatch):
    companies = [make_company(name=f"Company {i}") for i in range(5)]
    _check_returns(monkeypatch, Outcome.NOTHING_PENDING)
    ids = [c.pk for c in companies]

    with CaptureQueriesContext(connection) as idle:
        tasks.run_company_checks(ids, Trigger.SCHEDULE)
    touching = [q["sql"] for q in idle.captured_queries if "webhookdelivery" in q["sql"]]
    assert len(touching) == 1 and touching[0].lstrip().upper().startswith("SELECT")

    delivery = _delivery(companies[2])
    with CaptureQueriesContext(connection) as busy:
        tasks.run_company_checks(ids, Trigger.SCHEDULE)
    touching = [q["sql"] for q in busy.captured_queries if "webhookdelivery" in q["sql"]]
    assert len(touching) == 2  # the batch's read, one UPDATE
    delivery.refresh_from_db()
    assert delivery.state == State.PROCESSED


# --- Reprocess --------------------------------------------------------------------------------


def _reprocess(admin_client, *deliveries):
    return admin_client.post(
        reverse("admin:exports_webhookdelivery_changelist"),
        {"action": "reprocess", "_selected_action": [str(d.pk) for d in deliveries]},
        follow=True,
    )


def test_reprocess_of_a_delivery_it_cannot_act_on_says_so(admin_client):
    company = make_company(name="Alpha")
    processed = _delivery(company, state=State.PROCESSED)

    response = _reprocess(admin_client, processed)

    shown = [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]
    assert [level for level, _ in shown] == ["warning"], shown
    assert "Nothing reprocessed" in shown[0][1]
    assert "only failed deliveries" in shown[0][1]


def test_reprocess_of_a_failed_delivery_queues_its_check(admin_client, monkeypatch):
    company = make_company(name="Alpha")
    failed = _delivery(company, state=State.FAILED)
    monkeypatch.setattr("exports.services.dispatch.async_task", lambda *a, **k: None)

    response = _reprocess(admin_client, failed)

    shown = [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]
    assert [level for level, _ in shown] == ["success"], shown
    assert "1 delivery reprocessed" in shown[0][1]
    failed.refresh_from_db()
    assert failed.state == State.ENQUEUED


def test_the_delivery_page_links_its_job(admin_client):
    company = make_company(name="Alpha")
    job = make_job(company, seen_via=Trigger.WEBHOOK)
    delivery = _delivery(company, job_id=job.pleo_job_id)

    page = admin_client.get(
        reverse("admin:exports_webhookdelivery_change", args=[delivery.pk])
    ).content.decode()

    assert reverse("admin:exports_exportjob_change", args=[job.pk]) in page


# --- Rejected requests, counted ---------------------------------------------------------------


def _due(monkeypatch):
    """The next request finds a minute gone by since this process's last flush."""
    monkeypatch.setattr(counter, "_last_flush", time.monotonic() - counter.FLUSH_INTERVAL_SECONDS)


def test_rejections_cost_no_write_per_request_and_are_flushed_once_a_minute(monkeypatch):
    hook = Hook()
    body = job_event(hook.company)
    with CaptureQueriesContext(connection) as captured:
        for _ in range(5):
            assert hook.post(body, signature="v1,bm90IHRoZSBzaWduYXR1cmU=").status_code == 401
        assert hook.post(url=f"/webhooks/pleo/{uuid.uuid4()}/").status_code == 404
    writes = [q for q in captured.captured_queries if "rejection" in q["sql"].lower()]
    assert writes == []
    assert not WebhookRejectionCount.objects.exists()

    _due(monkeypatch)
    assert hook.post(body, signature="v1,bm90IHRoZSBzaWduYXR1cmU=").status_code == 401

    per_endpoint = WebhookRejectionCount.objects.get(endpoint=hook.endpoint, status=401)
    assert per_endpoint.count == 6
    assert WebhookRejectionCount.objects.get(endpoint=None, status=404).count == 1
    assert counter.pending_counts() == {}

    # Counted again, and added to the same rows at the next flush.
    assert hook.post(body, signature="v1,bm90IHRoZSBzaWduYXR1cmU=").status_code == 401
    _due(monkeypatch)
    hook.post(body)  # an accepted delivery flushes too
    per_endpoint.refresh_from_db()
    assert per_endpoint.count == 7


def test_a_too_large_body_is_counted_on_its_endpoint(monkeypatch, settings):
    hook = Hook()
    monkeypatch.setattr("exports.webhook_views.MAX_BODY_BYTES", 10)
    assert hook.post(job_event(hook.company)).status_code == 413
    counter.rejections_flush()
    assert WebhookRejectionCount.objects.get(endpoint=hook.endpoint, status=413).count == 1


def test_counts_are_shown_on_the_credential_page_and_the_index(admin_client, monkeypatch):
    hook = Hook()
    for _ in range(3):
        hook.post(job_event(hook.company), signature="v1,bm90IHRoZSBzaWduYXR1cmU=")
    hook.post(url=f"/webhooks/pleo/{uuid.uuid4()}/")
    _due(monkeypatch)  # the admin page flushes this process's tally

    page = admin_client.get(
        reverse("admin:exports_credential_change", args=[hook.company.credential_id])
    ).content.decode()
    assert "Rejected webhook requests" in page
    assert "401 signature not verified: 3" in page
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert 'id="webhook-rejections"' in index
    assert "401 signature not verified: 3" in index
    assert "404 unknown endpoint: 1" in index
