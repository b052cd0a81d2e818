"""Notifications: each kind, the channels, the dedupe window and digest on the
product's clock, retries, and that no secret (nor the webhook URL) reaches a message or a log.

Email goes to Django's in-memory backend; the webhook to a local HTTP receiver
(tests/fixtures/notify.py). The lifecycle's hooks are tested in test_notification_hooks.py and
``notify_health`` in test_notify_health.py.
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.views.debug import ExceptionReporter

from exports import clock
from exports.models import (
    Company,
    Credential,
    ExportItemRecord,
    ExportJob,
    Notification,
    XeroConnection,
)
from exports.notifications import channels
from exports.notifications.kinds import Kind
from exports.notifications.render import JobEnd
from exports.notifications.service import (
    MAX_ATTEMPTS,
    notification_deliver,
    notification_flush_digests,
    notification_request,
    notification_request_job_outcome,
    notification_requeue_due,
    notifications_maintenance,
)
from tests import factories, processes, secrets_registry
from tests.conftest import TEST_ENCRYPTION_KEY
from tests.factories import make_company
from tests.fixtures.notify import INTEGRATOR, PUBLIC, deliver_queued

pytestmark = pytest.mark.django_db

BOOKKEEPER = "bookkeeper@acme.example"
Status = Notification.Status


def make_job(company, *, status="failed", claim=ExportJob.Claim.OURS, items=3, **fields):
    """A job of ours, created three hours ago, in ``status``."""
    return factories.make_job(
        company,
        status=status,
        created_at=clock.now() - timedelta(hours=3),
        number_of_items=items,
        claim=claim,
        **fields,
    )


def make_record(job, *, result, state=ExportItemRecord.State.REPORTED, reason=""):
    entry = uuid.uuid4()
    return ExportItemRecord.objects.create(
        export_job=job,
        accounting_entry_id=entry,
        idempotency_key=str(uuid.uuid4()),
        state=state,
        result=result,
        failure_reason=reason,
        failure_reason_type="account_unknown" if reason else "",
    )


@pytest.fixture
def company(db):
    return make_company(name="Acme Nordic", notify_emails=f"{BOOKKEEPER}")


def arrange(kind: Kind, company: Company) -> dict:
    """The request for one notification of ``kind`` about ``company``, with its facts in place."""
    if kind == Kind.JOB_FAILED:
        job = make_job(company, failure_reason_type="job_expired", failure_reason="Job expired")
        make_record(job, result=ExportItemRecord.Result.SUCCESSFUL)
        return {"company": company, "job": job, "facts": {"cause": JobEnd.ENDED_IN_PLEO}}
    if kind == Kind.ITEMS_FAILED:
        job = make_job(company, status="completed_with_errors")
        make_record(job, result=ExportItemRecord.Result.SUCCESSFUL)
        make_record(job, result="failed", reason="No expense account for 'Travel'.")
        return {"company": company, "job": job}
    if kind == Kind.JOB_AT_RISK:
        job = make_job(company, status="in_progress")
        deadline = clock.now() + timedelta(minutes=10)
        return {
            "company": company,
            "job": job,
            "facts": {"deadline": deadline.isoformat(), "minutes_left": 10},
        }
    if kind == Kind.BLOCKED_ELSEWHERE:
        job = make_job(
            company,
            status="in_progress",
            claim=ExportJob.Claim.ELSEWHERE,
            started_at=clock.now() - timedelta(minutes=61),
        )
        return {"company": company, "job": job}
    if kind == Kind.REAUTHORISATION:
        credential = company.credential
        Credential.objects.filter(pk=credential.pk).update(
            status=Credential.Status.INVALID, last_error="Pleo refused the API key (401)."
        )
        return {"credential": credential.pk}
    if kind == Kind.RECONCILIATION_FLAGGED:
        facts = {"from": "2026-11-01", "to": "2026-11-30", "flagged": 2, "totals": {"missing": 2}}
        return {"company": company, "facts": facts}
    if kind == Kind.XERO_REAUTHORISATION:
        refresh = secrets_registry.register(f"xrt-{secrets.token_hex(12)}")
        connection = XeroConnection(
            company=company,
            tenant_name="Acme Nordic ApS",
            status=XeroConnection.Status.NEEDS_REAUTHORISATION,
            # Xero's error text quoting a token must not carry it into a message either.
            last_error=f"Xero refused the refresh token ({refresh} revoked). Reconnect to Xero.",
        )
        connection.access_token = secrets_registry.register(f"xat-{secrets.token_hex(12)}")
        connection.refresh_token = refresh
        connection.save()
        return {"company": company}
    return {"facts": {"failing": {"worker": "worker heartbeat stale: last seen 600 s ago"}}}


# --- each kind ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(Kind))
def test_each_kind_sends_one_message_by_email_and_webhook(notify_settings, receiver, company, kind):
    request = arrange(kind, company)
    notification = notification_request(kind=kind, **request)
    assert notification is not None and notification.status == Status.QUEUED
    assert deliver_queued() == [Status.SENT]

    to = sorted(address for message in mail.outbox for address in message.to)
    expected = [INTEGRATOR] if kind == Kind.SERVICE_UNHEALTHY else [BOOKKEEPER, INTEGRATOR]
    assert to == sorted(expected)  # one message to each, not one to all
    assert len(receiver.received) == 1
    text = mail.outbox[0].body
    assert mail.outbox[0].subject.startswith("[pleo-export-bridge] ")
    assert "What happened: " in text and "What to do: " in text
    notification.refresh_from_db()
    assert f"Details: {notification.link}" in text
    assert notification.link.startswith(f"{PUBLIC}/admin/")
    if kind != Kind.SERVICE_UNHEALTHY:
        assert "Acme Nordic" in text and str(company.pleo_company_id) in text
    job = request.get("job")
    if job is not None:
        assert f"Pleo job: {job.pleo_job_id}" in text  # the id in full
        assert notification.link == f"{PUBLIC}/admin/exports/exportjob/{job.pk}/change/"
    assert "Acme Nordic" in receiver.texts()[0] or kind == Kind.SERVICE_UNHEALTHY
    assert notification.status == Status.SENT
    assert notification.delivered_to == [f"email:{a}" for a in notification.recipients] + [
        "webhook"
    ]
    assert notification.webhook_host == "127.0.0.1"


def test_messages_say_what_happened_and_what_to_do(notify_settings, company):
    expired = arrange(Kind.JOB_FAILED, company)
    notification_request(kind=Kind.JOB_FAILED, **expired)
    failed_items = arrange(Kind.ITEMS_FAILED, company)
    notification_request(kind=Kind.ITEMS_FAILED, **failed_items)
    deliver_queued()
    by_subject = {message.subject: message.body for message in mail.outbox}
    expired_text = next(body for s, body in by_subject.items() if "expired" in s)
    assert "Pleo expired the export job" in expired_text
    assert "job_expired" in expired_text
    assert "1 of 3 items were booked and reported to Pleo; 2 were not." in expired_text
    assert "Ask the bookkeeper to export again from Pleo" in expired_text
    items_text = next(body for s, body in by_subject.items() if "1 item failed" in s)
    assert "account_unknown: No expense account for 'Travel'." in items_text
    assert "Review errors" in items_text


def test_a_completed_job_notifies_nobody(notify_settings, company):
    job = make_job(company, status="completed")
    assert notification_request_job_outcome(company=company, job=job, cause=JobEnd.REPORTED) is None
    assert not Notification.objects.exists()


def test_blocked_elsewhere_waits_an_hour(notify_settings, company):
    job = make_job(
        company,
        status="in_progress",
        claim=ExportJob.Claim.ELSEWHERE,
        started_at=clock.now() - timedelta(minutes=59),
    )
    assert notification_request(kind=Kind.BLOCKED_ELSEWHERE, company=company, job=job) is None
    clock.advance(61)
    assert notification_request(kind=Kind.BLOCKED_ELSEWHERE, company=company, job=job)
    # Adopted: not blocked any more.
    ExportJob.objects.filter(pk=job.pk).update(claim=ExportJob.Claim.ADOPTED)
    job.refresh_from_db()
    clock.advance(3601)
    assert notification_request(kind=Kind.BLOCKED_ELSEWHERE, company=company, job=job) is None


def test_without_recipients_the_log_says_so(settings, company):
    settings.NOTIFY_EMAILS = []
    settings.NOTIFY_WEBHOOK_URL = ""
    Company.objects.filter(pk=company.pk).update(notify_emails="")
    company.refresh_from_db()
    notification = notification_request(kind=Kind.JOB_FAILED, **arrange(Kind.JOB_FAILED, company))
    assert notification.status == Status.NO_CHANNEL


def test_the_send_is_queued_for_the_worker_when_the_transaction_commits(
    notify_settings, company, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        notification = notification_request(
            kind=Kind.JOB_FAILED, **arrange(Kind.JOB_FAILED, company)
        )
        assert notify_settings["queued"] == []  # not before the commit
    assert notify_settings["queued"] == [notification.pk]
    assert mail.outbox == []  # the worker sends it, not the caller


def test_company_emails_are_validated():
    company = Company(name="X", pleo_company_id=uuid.uuid4(), notify_emails="a@b.dk, not-one")
    with pytest.raises(ValidationError) as excinfo:
        company.full_clean(exclude=["credential"])
    assert "not-one" in str(excinfo.value)
    company.notify_emails = "a@b.dk; c@d.se"
    company.full_clean(exclude=["credential"])


# --- the window -----------------------------------------------------------------------------------


def test_one_message_per_company_and_kind_per_hour_then_a_digest(notify_settings, company):
    first = arrange(Kind.JOB_FAILED, company)
    assert notification_request(kind=Kind.JOB_FAILED, **first).status == Status.QUEUED
    second = arrange(Kind.JOB_FAILED, company)
    assert notification_request(kind=Kind.JOB_FAILED, **second).status == Status.SUPPRESSED
    # Another kind, or another company, has its own window.
    assert notification_request(
        kind=Kind.ITEMS_FAILED, **arrange(Kind.ITEMS_FAILED, company)
    ).status == (Status.QUEUED)
    other = make_company(name="Other Co")
    assert notification_request(kind=Kind.JOB_FAILED, **arrange(Kind.JOB_FAILED, other)).status == (
        Status.QUEUED
    )
    clock.advance(3599)
    third = arrange(Kind.JOB_FAILED, company)
    assert notification_request(kind=Kind.JOB_FAILED, **third).status == Status.SUPPRESSED
    clock.advance(2)
    fourth = arrange(Kind.JOB_FAILED, company)
    latest = notification_request(kind=Kind.JOB_FAILED, **fourth)
    assert latest.status == Status.QUEUED
    assert "Also since the last message (2 more within the hour" in latest.text
    assert str(second["job"].pleo_job_id) in latest.text
    assert str(third["job"].pleo_job_id) in latest.text
    assert set(latest.digest.values_list("pleo_job_id", flat=True)) == {
        second["job"].pleo_job_id,
        third["job"].pleo_job_id,
    }
    deliver_queued()
    webhook_subjects = [m.subject for m in mail.outbox if m.to == [BOOKKEEPER]]
    assert len(webhook_subjects) == 3  # job failed, items failed, and the one after the hour


def test_the_maintenance_sends_the_digest_once_the_window_has_passed(notify_settings, company):
    notification_request(kind=Kind.JOB_AT_RISK, **arrange(Kind.JOB_AT_RISK, company))
    suppressed = [
        notification_request(kind=Kind.JOB_AT_RISK, **arrange(Kind.JOB_AT_RISK, company))
        for _ in range(3)
    ]
    assert {n.status for n in suppressed} == {Status.SUPPRESSED}
    assert notification_flush_digests() == 0  # the window is still open
    clock.advance(3601)
    notifications_maintenance()
    digest = Notification.objects.filter(summary="digest of 3").get()
    assert digest.status == Status.QUEUED
    assert digest.subject == (
        "[pleo-export-bridge] Acme Nordic: 3 more 'Job at risk of expiry' within the hour"
    )
    for notice in suppressed:
        assert str(notice.pleo_job_id) in digest.text
    assert set(digest.digest.all()) == set(suppressed)
    assert notification_flush_digests() == 0  # once
    assert deliver_queued() == [Status.SENT, Status.SENT]


def test_a_condition_seen_again_within_the_window_records_nothing(notify_settings, company):
    request = arrange(Kind.BLOCKED_ELSEWHERE, company)
    assert notification_request(kind=Kind.BLOCKED_ELSEWHERE, **request)
    for _ in range(3):
        clock.advance(300)
        assert notification_request(kind=Kind.BLOCKED_ELSEWHERE, **request) is None
    assert Notification.objects.count() == 1
    clock.advance(3600)
    again = notification_request(kind=Kind.BLOCKED_ELSEWHERE, **request)
    assert again.status == Status.QUEUED and "(2 h)" in again.text


# --- secrets --------------------------------------------------------------------------------------


def test_no_secret_in_any_message(notify_settings, receiver, company):
    credential = company.credential
    for name in Credential.SECRET_FIELDS:
        setattr(credential, name, secrets_registry.register(f"{name}-{secrets.token_hex(12)}"))
    # Pleo's error text quoting a token must not carry it into a message either.
    credential.last_error = f"invalid_grant: refresh token {credential.refresh_token} revoked"
    credential.status = Credential.Status.NEEDS_REAUTHORISATION
    credential.kind = Credential.Kind.OAUTH
    credential.save()
    endpoint = credential.webhook_endpoint
    endpoint.set_secret_entries(
        [{"secret": secrets_registry.register(f"whsec_{secrets.token_hex(16)}")}]
    )
    endpoint.save()
    for kind in Kind:
        request = arrange(kind, company) if kind != Kind.REAUTHORISATION else {}
        request.setdefault("credential", credential.pk) if kind == Kind.REAUTHORISATION else None
        assert notification_request(kind=kind, **request)
    deliver_queued()
    shown = [m.subject + m.body for m in mail.outbox] + receiver.texts()
    shown += [n.subject + n.summary + n.text + n.error for n in Notification.objects.all()]
    assert len(mail.outbox) == 2 * len(Kind) - 1
    leaked = [s for s in secrets_registry.current() if any(s in text for text in shown)]
    assert not leaked
    reauth = Notification.objects.get(kind=Kind.REAUTHORISATION)
    assert "refresh token [hidden] revoked" in reauth.text
    assert "Reconnect to Pleo" in reauth.text
    xero = Notification.objects.get(kind=Kind.XERO_REAUTHORISATION)
    assert "Xero refused the refresh token ([hidden] revoked)" in xero.text
    assert "'Reconnect Xero'" in xero.text


def test_the_webhook_url_is_never_stored_or_logged(notify_settings, receiver, company, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.answer(500, times=2)
    notification = notification_request(kind=Kind.JOB_FAILED, **arrange(Kind.JOB_FAILED, company))
    deliver_queued()
    notification.refresh_from_db()
    assert notification.status == Status.RETRYING
    assert notification.error == "webhook (127.0.0.1): HTTP 500"
    assert receiver.path not in caplog.text
    assert "127.0.0.1" in caplog.text  # the host is named
    # Unreachable: the exception's own text names the URL; only its type is kept.
    receiver.server.shutdown()
    receiver.server.server_close()
    clock.advance(61)
    notification_requeue_due()
    notification_deliver(notification_id=notification.pk)
    notification.refresh_from_db()
    assert notification.error == "webhook (127.0.0.1): ConnectionError"
    assert receiver.path not in caplog.text


def _error_page() -> str:
    """Django's technical 500 page (it lists the settings), for an error raised here."""
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        return ExceptionReporter(None, *sys.exc_info()).get_traceback_html()


def test_the_settings_show_the_webhook_host_only(settings, receiver):
    from pleo_integration.settings import _WebhookUrl

    settings.NOTIFY_WEBHOOK_URL = _WebhookUrl(receiver.url)
    assert repr(settings.NOTIFY_WEBHOOK_URL) == "'http://127.0.0.1/…'"
    assert str(settings.NOTIFY_WEBHOOK_URL) == receiver.url  # what the channel posts to
    html = _error_page()
    assert "NOTIFY_WEBHOOK_URL" in html
    assert receiver.path not in html


# --- delivery and retries -------------------------------------------------------------------------


def test_a_short_retry_after_is_waited_for_within_the_attempt(notify_settings, receiver, company):
    receiver.answer(429, {"Retry-After": "2"})
    notification_request(kind=Kind.JOB_FAILED, **arrange(Kind.JOB_FAILED, company))
    assert deliver_queued() == [Status.SENT]
    assert notify_settings["slept"] == [2.0]
    assert len(receiver.received) == 1


def test_a_failed_channel_is_retried_later_and_only_it(notify_settings, receiver, company):
    receiver.answer(503, {"Retry-After": "600"})
    notification = notification_request(kind=Kind.JOB_FAILED, **arrange(Kind.JOB_FAILED, company))
    assert deliver_queued() == [Status.RETRYING]
    notification.refresh_from_db()
    assert notification.attempts == 1
    assert notification.delivered_to == [f"email:{INTEGRATOR}", f"email:{BOOKKEEPER}"]
    # Not before Pleo... the webhook's Retry-After (600 s), though the first backoff is 60 s.
    assert notification.next_attempt_at >= clock.now() + timedelta(seconds=599)
    assert notify_settings["slept"] == []  # a long Retry-After is not slept on in the worker
    clock.advance(300)
    assert notification_requeue_due() == 0
    clock.advance(301)
    notify_settings["queued"].clear()
    assert notification_requeue_due() == 1
    assert notify_settings["queued"] == [notification.pk]
    assert notification_deliver(notification_id=notification.pk) == Status.SENT
    assert len(mail.outbox) == 2  # the emails were not sent again
    assert len(receiver.received) == 1
    assert notification_deliver(notification_id=notification.pk) == "not due"  # once


def test_delivery_gives_up_after_the_last_attempt(notify_settings, receiver, company):
    receiver.answer(500, times=2 * MAX_ATTEMPTS)
    notification = notification_request(kind=Kind.JOB_FAILED, **arrange(Kind.JOB_FAILED, company))
    statuses = []
    for _ in range(MAX_ATTEMPTS):
        statuses.append(notification_deliver(notification_id=notification.pk))
        clock.advance(3601)
        notification_requeue_due()
    assert statuses == [Status.RETRYING] * (MAX_ATTEMPTS - 1) + [Status.FAILED]
    notification.refresh_from_db()
    assert (notification.attempts, notification.next_attempt_at) == (MAX_ATTEMPTS, None)


def test_a_queued_notification_no_worker_took_is_queued_again(notify_settings, company):
    notification = notification_request(kind=Kind.JOB_FAILED, **arrange(Kind.JOB_FAILED, company))
    assert notification_requeue_due() == 0
    clock.advance(601)
    assert notification_requeue_due() == 1
    assert notify_settings["queued"] == [notification.pk]
    assert notification_requeue_due() == 0  # not again every minute


def test_a_notification_never_raises_into_the_caller(notify_settings, company, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("renderer broke")

    monkeypatch.setattr("exports.notifications.service.render", broken)
    assert notification_request(kind=Kind.JOB_FAILED, **arrange(Kind.JOB_FAILED, company)) is None
    assert "Could not record a job_failed notification" in caplog.text
    assert not Notification.objects.exists()
    assert Company.objects.filter(pk=company.pk).exists()  # the caller's transaction is fine


def test_slack_text_is_escaped():
    assert channels.slack_text("A <!channel> & co", "x > y") == (
        "*A &lt;!channel&gt; &amp; co*\nx &gt; y"
    )


# --- settings -------------------------------------------------------------------------------------

_PRINT_SETTINGS = """
import json
from django.conf import settings as s
print(json.dumps({name: str(getattr(s, name, None)) for name in (
    "EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_USE_TLS",
    "EMAIL_TIMEOUT", "DEFAULT_FROM_EMAIL", "NOTIFY_EMAILS", "ANYMAIL", "NOTIFY_WINDOW_SECONDS")}))
"""


def _settings_with(env: dict) -> dict:
    base = processes.settings_env(
        without=("EMAIL_", "NOTIFY_"),
        SECRET_KEY="s",
        CREDENTIALS_ENCRYPTION_KEYS=TEST_ENCRYPTION_KEY,
        **env,
    )
    result = processes.run([sys.executable, "-c", _PRINT_SETTINGS], base, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_email_settings_come_from_email_url():
    production = _settings_with({"DEBUG": "0"})
    assert production["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (production["EMAIL_HOST"], production["EMAIL_PORT"]) == ("localhost", "25")
    assert production["EMAIL_TIMEOUT"] == "10.0"  # never a hung SMTP server
    assert production["NOTIFY_EMAILS"] == "[]"
    assert _settings_with({"DEBUG": "1"})["EMAIL_BACKEND"].endswith("console.EmailBackend")
    configured = _settings_with(
        {
            "DEBUG": "0",
            "EMAIL_URL": "smtp+tls://mailer:p%40ss@mail.example.com:587",
            "DEFAULT_FROM_EMAIL": "bridge@example.com",
            "NOTIFY_EMAILS": "a@example.com,b@example.com",
        }
    )
    assert configured["EMAIL_HOST"] == "mail.example.com"
    assert (configured["EMAIL_PORT"], configured["EMAIL_USE_TLS"]) == ("587", "True")
    assert configured["EMAIL_HOST_USER"] == "mailer"
    assert configured["DEFAULT_FROM_EMAIL"] == "bridge@example.com"
    assert configured["NOTIFY_EMAILS"] == "['a@example.com', 'b@example.com']"
    provider = _settings_with(
        {
            "DEBUG": "0",
            "EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend",
            "ANYMAIL_POSTMARK_SERVER_TOKEN": "token",
        }
    )
    assert provider["EMAIL_BACKEND"] == "anymail.backends.postmark.EmailBackend"
    assert provider["ANYMAIL"] == "{'POSTMARK_SERVER_TOKEN': 'token'}"


# --- the worker and the admin ---------------------------------------------------------------------


def test_the_worker_task_sends_it(
    notify_settings, receiver, company, django_capture_on_commit_callbacks
):
    """The task queued on commit is found by its dotted path (as django-q2 finds it) and sends."""
    import pydoc

    from exports.notifications.service import TASK

    with django_capture_on_commit_callbacks(execute=True):
        notification = notification_request(
            kind=Kind.JOB_FAILED, **arrange(Kind.JOB_FAILED, company)
        )
    assert notify_settings["queued"] == [notification.pk]
    task = pydoc.locate(TASK)
    assert task(notification.pk) == Status.SENT
    assert len(receiver.received) == 1


def test_the_notification_log_in_the_admin_is_read_only(
    notify_settings, receiver, company, admin_client
):
    first = notification_request(kind=Kind.JOB_FAILED, **arrange(Kind.JOB_FAILED, company))
    clock.advance(3601)
    notification_request(kind=Kind.JOB_FAILED, **arrange(Kind.JOB_FAILED, company))
    clock.advance(-3601)
    suppressed = notification_request(kind=Kind.JOB_FAILED, **arrange(Kind.JOB_FAILED, company))
    deliver_queued()
    changelist = admin_client.get("/admin/exports/notification/")
    assert changelist.status_code == 200
    body = changelist.content.decode()
    assert "Acme Nordic" in body and "2 emails, webhook (127.0.0.1)" in body
    assert "/admin/exports/notification/add/" not in body
    page = admin_client.get(f"/admin/exports/notification/{first.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert str(first.pleo_job_id) in text and "integrator@example.com" in text
    assert receiver.path not in body + text  # only the host is ever stored
    assert admin_client.post(f"/admin/exports/notification/{first.pk}/delete/").status_code == 403
    assert Notification.objects.filter(pk=suppressed.pk, status=Status.SUPPRESSED).exists()


def test_a_company_gets_its_bookkeepers_addresses_in_the_admin(admin_client, company):
    url = f"/admin/exports/company/{company.pk}/change/"
    form = {
        "name": company.name,
        "pleo_company_id": str(company.pleo_company_id),
        "active": "on",
        "credential": str(company.credential_id),
        "accounting_adapter": "journal",
    }
    refused = admin_client.post(url, {**form, "notify_emails": "a@acme.example, nope"})
    assert refused.status_code == 200
    assert "Not an email address: nope" in refused.content.decode()
    saved = admin_client.post(url, {**form, "notify_emails": "a@acme.example, b@acme.example"})
    assert saved.status_code == 302
    company.refresh_from_db()
    assert company.notify_emails == "a@acme.example, b@acme.example"


def test_the_log_is_pruned_with_the_audit_entries(notify_settings, company, capsys):
    from django.core.management import call_command

    old = notification_request(kind=Kind.JOB_FAILED, **arrange(Kind.JOB_FAILED, company))
    clock.advance(91 * 86400)
    recent = notification_request(kind=Kind.JOB_FAILED, **arrange(Kind.JOB_FAILED, company))
    call_command("prune_history")
    assert list(Notification.objects.values_list("pk", flat=True)) == [recent.pk]
    assert old.pk != recent.pk
    assert "Pruned 1 notification log rows" in capsys.readouterr().out
