"""Against the local Xero and the Pleo sandbox over real HTTP: the consent revoked at Xero while a
job is exported ends with the operator and the bookkeeper told, once (``xero_reauthorisation``),
and nothing booked. The unit tests (Xero faked at the transport) are in test_reauthorisation.py."""

from __future__ import annotations

import pytest
import requests
from django.core import mail

from exports.models import AuditEntry, Company, Notification, XeroConnection
from exports.notifications.kinds import Kind
from exports.services.start_flow import Outcome
from tests import secrets_registry
from tests.fixtures.notify import INTEGRATOR, deliver_queued
from tests.xero.test_booking import ORGANISATION, bx, env  # noqa: F401 - the fixtures

pytestmark = pytest.mark.django_db

BOOKKEEPER = "books@acme.example"


def revoke_consent(bx) -> None:  # noqa: F811
    """What disconnecting the app at Xero does: the authorisation revoked (``/connect/revocation``
    with the app's credentials), so its access token is refused and its refresh token too."""
    refresh = XeroConnection.objects.get(pk=bx.connection.pk).refresh_token
    answer = requests.post(
        f"{bx.xero.url}/connect/revocation",
        data={"token": refresh},
        auth=(bx.xero.client.client_id, bx.xero.client.client_secret),
        timeout=5,
    )
    assert answer.status_code == 200
    assert bx.xero.state.refresh_token_status(refresh) == "revoked"


def test_consent_revoked_during_an_export_tells_the_operator_once(
    bx,  # noqa: F811
    notify_settings,
    receiver,
    monkeypatch,
):
    Company.objects.filter(pk=bx.env.company.pk).update(notify_emails=BOOKKEEPER)
    job_id = bx.job({"normal": 2})
    bx.run_revoked_after_validation(monkeypatch, lambda: revoke_consent(bx), job_id)
    assert bx.connection.last_error.startswith(
        "Xero refused the refresh token (The refresh token has been revoked.)"
    )

    [notification] = Notification.objects.filter(kind=Kind.XERO_REAUTHORISATION)
    company = bx.env.company
    assert notification.company_id == company.pk
    assert f"the Xero connection to {ORGANISATION} needs re-authorisation" in notification.subject
    assert f"Xero organisation: {ORGANISATION}" in notification.text
    assert "use 'Reconnect Xero'" in notification.text
    assert notification.link.endswith(f"/admin/exports/company/{company.pk}/change/")
    assert deliver_queued() == [Notification.Status.SENT]
    told = {m.to[0]: m for m in mail.outbox}
    assert sorted(told) == sorted([INTEGRATOR, BOOKKEEPER])
    assert notification.subject in told[INTEGRATOR].subject and len(receiver.received) == 1
    shown = [m.subject + m.body for m in mail.outbox] + receiver.texts()
    assert not [s for s in secrets_registry.current() if any(s in text for text in shown)]

    # The next run meets the same condition: the job waits again, nobody is told again.
    assert bx.run().outcome == Outcome.RESUMED
    assert bx.env.pleo(job_id)["job"]["status"] == "in_progress" and bx.documents() == []
    assert Notification.objects.filter(kind=Kind.XERO_REAUTHORISATION).count() == 1
    assert (
        AuditEntry.objects.filter(company=company, step="xero_connection", outcome="error").count()
        == 1
    )
