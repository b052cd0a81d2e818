"""The notification hooks in the export flow, against the Pleo sandbox over real HTTP.

Each place where something needs a person tells them (one notification, of the right kind, with
the company and the Pleo job id in full); a job that completes tells nobody; a failing channel or
a broken notification never changes what the export does.
"""

from __future__ import annotations

import uuid

import pytest
from django.core import mail

from exports import clock
from exports.models import Company, Credential, Notification
from exports.notifications.kinds import Kind
from exports.services.oauth import credential_mark_needs_reauthorisation
from exports.services.start_flow import Outcome
from tests import lifecycle_support
from tests.factories import make_sandbox_company_and_key
from tests.fixtures.notify import deliver_queued
from tests.lifecycle_support import slow_bookings

pytestmark = pytest.mark.django_db

BOOKKEEPER = "books@acme.example"


class Env(lifecycle_support.Env):
    """The lifecycle tests' sandbox company, whose clock moves with Pleo's on demand."""

    def advance(self, seconds: float) -> None:
        self.state.advance_clock(seconds)
        clock.advance(seconds)


@pytest.fixture
def env(pleo_sandbox, settings, notify_settings):
    settings.PLEO_MAX_ATTEMPTS = 2
    settings.PLEO_BACKOFF_BASE = 0
    settings.PLEO_BACKOFF_MAX = 0
    remote, key, company = make_sandbox_company_and_key(
        pleo_sandbox, remote_name="Sandbox Acme", notify_emails=BOOKKEEPER
    )
    return Env(pleo_sandbox, pleo_sandbox.state, remote, key, company)


def only_notification(kind: Kind) -> Notification:
    notifications = list(Notification.objects.all())
    assert [n.kind for n in notifications] == [kind]
    return notifications[0]


def expire_while_booking(env, monkeypatch) -> None:
    """Pleo's clock jumps past the job's expiry while an item is booked."""
    adapter = slow_bookings(monkeypatch, env.state, 4000, product_clock_too=False)
    Company.objects.filter(pk=env.company.pk).update(accounting_adapter=adapter)


def test_a_job_that_expires_mid_export_tells_the_company(env, monkeypatch):
    expire_while_booking(env, monkeypatch)
    job_id = env.job(2)
    assert env.run().outcome == Outcome.JOB_EXPIRED
    notification = only_notification(Kind.JOB_FAILED)
    assert notification.subject == f"[pleo-export-bridge] Acme: export job {job_id} expired"
    assert f"Pleo job: {job_id}" in notification.text
    assert "Pleo expired the export job before the bridge finished it (job_expired" in (
        notification.text
    )
    assert "0 of 2 items were booked and reported to Pleo; 2 were not." in notification.text
    assert "2 of those were booked in the accounting system but not reported" in notification.text
    assert deliver_queued() == ["sent"]
    assert sorted(m.to[0] for m in mail.outbox) == sorted(["integrator@example.com", BOOKKEEPER])


def test_items_that_fail_in_a_job_tell_the_company(env):
    job_id = env.job({"normal": 2, "missing_account": 1})
    assert env.run().outcome == Outcome.COMPLETED_WITH_ERRORS
    notification = only_notification(Kind.ITEMS_FAILED)
    assert f"1 item failed in export job {job_id}" in notification.subject
    assert "2 items exported, 1 item failed" in notification.text
    assert "account_unknown" in notification.text


def test_a_job_whose_every_item_failed_is_a_failed_job(env):
    job_id = env.job({"missing_contra": 2})
    assert env.run().outcome == Outcome.FAILED_JOB
    notification = only_notification(Kind.JOB_FAILED)
    assert notification.pleo_job_id == uuid.UUID(job_id)
    assert "The bridge marked the export job failed in Pleo (missing_configuration" in (
        notification.text
    )


def test_a_completed_job_tells_nobody(env):
    env.job(3)
    assert env.run().outcome == Outcome.COMPLETED
    assert not Notification.objects.exists()


def test_a_job_at_risk_of_expiry_tells_the_company(env):
    job_id = env.job(2)
    fault = env.state.add_fault("status", "GET", "/v3/export-items", status=503, count=None)
    assert env.run().outcome == Outcome.STARTED  # paused: nobody is told yet
    assert not Notification.objects.exists()
    env.state.remove_fault(fault.id)
    env.advance(3000)  # ten minutes are left of the hour
    assert env.run(recover=True).outcome == Outcome.COMPLETED
    notification = only_notification(Kind.JOB_AT_RISK)
    assert f"export job {job_id} is at risk of expiring" in notification.subject
    assert "(10 min left)" in notification.text


def test_a_company_blocked_by_a_job_owned_elsewhere_for_an_hour(env):
    job_id = env.job(2, expires_in=4 * 3600)  # the other integration's job does not expire yet
    assert env.state.start_as_other_integration(job_id)
    assert env.run().outcome == Outcome.OWNED_ELSEWHERE
    env.advance(1800)
    assert env.run().outcome == Outcome.OWNED_ELSEWHERE
    assert not Notification.objects.exists()
    env.advance(1801)
    assert env.run().outcome == Outcome.OWNED_ELSEWHERE
    notification = only_notification(Kind.BLOCKED_ELSEWHERE)
    assert f"blocked by export job {job_id} owned elsewhere" in notification.subject
    assert "adopt the job in the admin" in notification.text
    env.advance(300)
    assert env.run().outcome == Outcome.OWNED_ELSEWHERE  # the next poll: no second message
    assert Notification.objects.count() == 1


def test_a_refused_api_key_tells_the_companies_that_use_it(env):
    env.job(1)
    env.state.revoke(env.key.id)
    assert env.run().outcome == Outcome.FAILED
    notification = only_notification(Kind.REAUTHORISATION)
    assert notification.credential_id == env.company.credential_id
    assert "Acme (Pleo company id" in notification.text
    assert "Create a new API key in Pleo" in notification.text
    assert notification.recipients == ["integrator@example.com", BOOKKEEPER]


def test_an_oauth_credential_needing_reauthorisation_tells_once(env):
    credential = env.company.credential
    Credential.objects.filter(pk=credential.pk).update(kind=Credential.Kind.OAUTH)
    assert credential_mark_needs_reauthorisation(
        credential_id=credential.pk, reason="Pleo refused the refresh token (invalid_grant)."
    )
    notification = only_notification(Kind.REAUTHORISATION)
    assert "Reconnect to Pleo" in notification.text
    assert "invalid_grant" in notification.text
    assert not credential_mark_needs_reauthorisation(credential_id=credential.pk, reason="again")
    assert Notification.objects.count() == 1


def test_recovery_finding_our_job_failed_in_pleo_tells_the_company(env):
    job_id = env.job(2)
    fault = env.state.add_fault("status", "GET", "/v3/export-items", status=503, count=None)
    assert env.run().outcome == Outcome.STARTED
    env.state.remove_fault(fault.id)
    env.state.set_job_status(
        job_id, "failed", failure_reason_type="job_expired", failure_reason="Job expired"
    )
    env.run(recover=True)
    notification = only_notification(Kind.JOB_FAILED)
    assert notification.pleo_job_id == uuid.UUID(job_id)
    assert "job_expired" in notification.text


def test_a_failing_channel_never_affects_the_export(env, receiver):
    receiver.answer(500, times=10)
    job_id = env.job({"normal": 1, "missing_account": 1})
    assert env.run().outcome == Outcome.COMPLETED_WITH_ERRORS
    assert env.state.get_job(job_id)["job"]["status"] == "completed_with_errors"
    assert deliver_queued() == ["retrying"]
    notification = Notification.objects.get()
    assert notification.error == "webhook (127.0.0.1): HTTP 500"
    assert len(mail.outbox) == 2  # the emails went; the webhook is retried later


def test_a_broken_notification_never_affects_the_export(env, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("renderer broke")

    monkeypatch.setattr("exports.notifications.service.render", broken)
    job_id = env.job({"normal": 1, "missing_account": 1})
    assert env.run().outcome == Outcome.COMPLETED_WITH_ERRORS
    assert env.state.get_job(job_id)["job"]["status"] == "completed_with_errors"
    assert not Notification.objects.exists()
