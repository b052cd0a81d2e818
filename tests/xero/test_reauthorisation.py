"""A company's Xero connection that needs re-authorisation tells its people
(``xero_reauthorisation``): once per transition, one message per company an hour (the rest in a
digest), naming the company and the organisation, never a token; a reconnect clears the condition.
Xero is answered by ``responses``; the reconnect goes through the admin's callback as in
test_connect.py. Against the local Xero: tests/xero/test_reauthorisation_sandbox.py."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.core import mail
from django.urls import reverse

from exports import clock
from exports.adapters import get_adapter
from exports.models import AuditEntry, Credential, Notification, XeroConnection
from exports.notifications.kinds import Kind
from exports.notifications.service import notification_flush_digests
from exports.pleo import JobFailureReasonType
from exports.services import oauth, xero_connections
from tests import secrets_registry
from tests.factories import make_company
from tests.fixtures.notify import INTEGRATOR, PUBLIC, deliver_queued
from tests.xero import support
from tests.xero.support import TOKEN_URL, make_connection

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("xero_settings", "notify_settings")]

BOOKKEEPER = "books@xero-ltd.example"
ORGANISATION = "Demo Company (UK)"


@pytest.fixture(autouse=True)
def _webhook_receiver_reachable_and_own_budget(settings, fresh_budget, monkeypatch):
    """``responses`` answers Xero; the notification webhook (a local receiver) is real HTTP. The
    fixed tenant's request budget is the database's, rolled back with the test: other tests'
    calls to it (in Redis, when ``REDIS_URL`` is set) do not spend this one's."""
    settings.PLEO_RATE_LIMIT_BACKEND = "database"
    # Each reconnect syncs (5 calls): past the minute's burst, the budget's pace (1.2 s a call)
    # is waited for on its own clock, moved instead of slept (~9 s otherwise); no test here is
    # about that pace.
    support.VirtualWaits().install(monkeypatch)
    responses.add_passthru(re.compile(r"http://127\.0\.0\.1:\d+/"))


@pytest.fixture
def connection():
    company = make_company(name="Xero Ltd", notify_emails=BOOKKEEPER)
    return make_connection(company, access="xat-old-0001", refresh="xrt-old-0001", expires_in=-60)


def refuse_refresh(description="The refresh token has been revoked.") -> None:
    responses.post(
        TOKEN_URL, status=400, json={"error": "invalid_grant", "error_description": description}
    )


def validate(connection):
    return get_adapter("xero", company=connection.company).validate(job=None)


def told() -> list[Notification]:
    return list(Notification.objects.filter(kind=Kind.XERO_REAUTHORISATION).order_by("id"))


def reconnect(admin_client, company, *, access: str, refresh: str) -> None:
    """'Reconnect Xero' on the company page → Xero's consent (answered) → our callback."""
    start = admin_client.post(reverse("admin:exports_company_xero_connect", args=[company.pk]))
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    responses.post(TOKEN_URL, json=support.token_answer(access, refresh))
    responses.get(
        f"{support.API}/connections", json=support.connections_body((support.TENANT, ORGANISATION))
    )
    support.mock_settings_reads(responses)
    answer = admin_client.get(reverse("xero-oauth-callback"), {"code": "xc-1", "state": state})
    assert answer.status_code == 302


@responses.activate
def test_a_refused_refresh_tells_the_company_once_naming_company_and_organisation(connection):
    refuse_refresh()
    result = validate(connection)
    assert result.failure_type == JobFailureReasonType.ACCOUNTING_SYSTEM_AUTHENTICATION_FAILURE

    [notification] = told()
    company = connection.company
    assert notification.company_id == company.pk and notification.credential_id is None
    assert notification.dedupe_key == f"company:{company.pk}"
    assert notification.recipients == [INTEGRATOR, BOOKKEEPER]
    assert notification.subject == (
        f"[pleo-export-bridge] Xero Ltd: the Xero connection to {ORGANISATION} needs "
        f"re-authorisation"
    )
    assert notification.link == f"{PUBLIC}/admin/exports/company/{company.pk}/change/"
    text = notification.text
    assert f"Company: Xero Ltd (Pleo company id {company.pleo_company_id})" in text
    assert f"Xero organisation: {ORGANISATION}" in text
    assert (
        "What happened: Xero no longer lets the bridge use the company's connection to the Xero "
        f"organisation {ORGANISATION}: Xero refused the refresh token (The refresh token has been "
        "revoked.): the authorisation is expired or revoked." in text
    )
    assert "use 'Reconnect Xero'" in text and f"Details: {notification.link}" in text

    assert deliver_queued() == [Notification.Status.SENT]
    assert sorted(m.to[0] for m in mail.outbox) == sorted([INTEGRATOR, BOOKKEEPER])
    assert AuditEntry.objects.filter(
        company=company, step="xero_connection", outcome="error"
    ).exists()


@responses.activate
def test_a_second_failure_within_the_hour_tells_nobody(connection):
    refuse_refresh()
    validate(connection)
    assert deliver_queued() == [Notification.Status.SENT]
    clock.advance(600)
    # The connection already needs re-authorisation: every later use fails without a call, and
    # a 401/403 met meanwhile is not a new transition.
    assert validate(connection).failure_type == (
        JobFailureReasonType.ACCOUNTING_SYSTEM_AUTHENTICATION_FAILURE
    )
    assert not xero_connections.xero_connection_mark_needs_reauthorisation(
        connection_id=connection.pk, reason="Xero refused access to the organisation (403)."
    )
    assert len(responses.calls) == 1
    assert len(told()) == 1 and deliver_queued() == [] and len(mail.outbox) == 2


@responses.activate
def test_a_reconnect_clears_it_and_a_new_refusal_is_a_new_transition(admin_client, connection):
    refuse_refresh()
    validate(connection)
    company = connection.company
    page = reverse("admin:exports_company_change", args=[company.pk])
    assert 'id="xero-reauthorise"' in admin_client.get(page).content.decode()

    reconnect(admin_client, company, access="xat-re-0001", refresh="xrt-re-0001")
    connection.refresh_from_db()
    assert connection.status == XeroConnection.Status.OK and connection.last_error == ""
    assert 'id="xero-reauthorise"' not in admin_client.get(page).content.decode()
    listing = admin_client.get(reverse("admin:exports_company_changelist")).content.decode()
    assert "Xero needs re-authorisation" not in listing

    # Within the hour a new refusal is recorded for the digest, not sent on its own.
    XeroConnection.objects.filter(pk=connection.pk).update(access_token_expires_at=clock.now())
    refuse_refresh("Refresh token expired.")
    validate(connection)
    first, second = told()
    assert second.status == Notification.Status.SUPPRESSED
    assert "Refresh token expired" in second.text
    clock.advance(3601)
    assert notification_flush_digests() == 1
    digest = told()[-1]
    label = Kind.XERO_REAUTHORISATION.label
    assert digest.subject.endswith(f"1 more '{label}' within the hour")

    # After the window, a refusal following another reconnect is told at once.
    reconnect(admin_client, company, access="xat-re-0002", refresh="xrt-re-0002")
    XeroConnection.objects.filter(pk=connection.pk).update(access_token_expires_at=clock.now())
    clock.advance(3601)
    refuse_refresh()
    validate(connection)
    latest = told()[-1]
    assert latest.status == Notification.Status.QUEUED and latest.pk != digest.pk
    assert len(told()) == 4


@responses.activate
def test_no_token_or_secret_in_the_message(connection, receiver):
    """Tokens, the client secret and the webhook URL are registered secrets (the autouse check
    also reads the logs). A reason quoting a token is scrubbed: test_notifications.py."""
    refuse_refresh()
    validate(connection)
    assert deliver_queued() == [Notification.Status.SENT]
    [notification] = told()
    shown = [m.subject + m.body for m in mail.outbox] + receiver.texts()
    shown.append(notification.subject + notification.summary + notification.text)
    assert len(mail.outbox) == 2 and len(receiver.received) == 1
    assert len(secrets_registry.current()) >= 4  # both tokens, the client secret, the webhook's
    leaked = [s for s in secrets_registry.current() if any(s in text for text in shown)]
    assert not leaked


def test_the_refresh_loop_stores_each_rows_own_status_values():
    """The loop's statuses are its rows' TextChoices, with the values stored before."""
    owners = ((oauth.TOKENS, Credential.Status), (xero_connections.TOKENS, XeroConnection.Status))
    for owner, status in owners:
        assert owner.ok is status.OK and owner.ok == "ok"
        assert owner.needs_reauthorisation is status.NEEDS_REAUTHORISATION
        assert owner.needs_reauthorisation == "needs_reauthorisation"
