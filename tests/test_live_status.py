"""The company, job and index pages refresh their live parts while a check is queued
or running (a JSON status view polled by a static script), and "Check now" links to what to
follow."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.contrib.staticfiles import finders
from django.urls import reverse

from exports import clock
from exports.models import Company, ExportJob, Trigger
from tests import secrets_registry
from tests.factories import make_company, make_credential, make_job

pytestmark = pytest.mark.django_db

STATUS_URL = "admin:exports_live_status"


def _status(client, **params):
    response = client.get(reverse(STATUS_URL), params)
    return response


def _queue(company: Company) -> None:
    Company.objects.filter(pk=company.pk).update(check_queued_at=clock.now())


def _finish(company: Company, *, outcome: str, error: str = "") -> None:
    """What the worker leaves behind when the check is done."""
    Company.objects.filter(pk=company.pk).update(
        check_queued_at=None,
        lease_token=None,
        last_check_at=clock.now(),
        last_check_outcome=outcome,
        last_check_error=error,
    )


def test_the_company_status_follows_a_queued_check_to_its_end(admin_client):
    company = make_company(name="Alpha")
    _finish(company, outcome="failed", error="Pleo is unreachable: 503")
    _queue(company)

    queued = _status(admin_client, company=company.pk).json()
    assert queued["active"] is True
    assert "queued" in queued["banner"]

    _finish(company, outcome="started")
    done = _status(admin_client, company=company.pk).json()
    assert done["active"] is False
    assert done["banner"] == ""
    # The previous run's error is gone from the refreshed fields: no reload needed.
    assert done["fields"]["last_check_error"] == "-"
    assert done["fields"]["last_check_outcome"] == "started"
    assert "UTC (just now)" in done["fields"]["last_check_at"]


def test_a_running_check_is_active_and_the_job_status_is_refreshed(admin_client):
    company = make_company(name="Alpha")
    job = make_job(company, status=ExportJob.Status.IN_PROGRESS, seen_via=Trigger.WEBHOOK)
    Company.objects.filter(pk=company.pk).update(
        lease_token=uuid.uuid4(), lease_expires_at=clock.now() + timedelta(minutes=5)
    )
    data = _status(admin_client, job=job.pk).json()
    assert data["active"] is True and "running" in data["banner"]
    assert data["fields"]["status"] == "In Progress"
    assert data["fields"]["expiry_countdown"].startswith("in ")


def test_the_index_status_lists_the_companies_and_their_check_state(admin_client):
    alpha, beta = make_company(name="Alpha"), make_company(name="Beta")
    _queue(alpha)
    data = _status(admin_client).json()
    assert data["active"] is True
    assert data["companies"][str(alpha.pk)]["check_state"] == "check queued…"
    assert data["companies"][str(beta.pk)]["check_state"] == ""


def test_the_status_is_scoped_and_shows_no_secret(client):
    key = secrets_registry.register("pk_live_never_in_the_status_view_A1B2C3D4")
    company = make_company(name="Alpha", credential=make_credential(name="Alpha key", api_key=key))
    _queue(company)
    staff = get_user_model().objects.create_user("scoped", password="pw-123456789", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_company"))
    client.force_login(staff)

    # No membership: not one of their companies.
    assert _status(client, company=company.pk).status_code == 404
    assert _status(client).json()["companies"] == {}

    nobody = get_user_model().objects.create_user("nobody", password="pw-1234567", is_staff=True)
    client.force_login(nobody)
    assert _status(client).status_code == 403

    root = get_user_model().objects.create_superuser("root", "r@example.com", "pw-123456789")
    client.force_login(root)
    for params in ({}, {"company": company.pk}):
        text = json.dumps(_status(client, **params).json())
        assert key not in text and "Alpha key" not in text

    client.logout()
    assert _status(client).status_code == 302  # to the login page


def test_the_pages_carry_the_script_and_start_polling_only_while_active(admin_client):
    company = make_company(name="Alpha")
    assert finders.find("exports/live_status.js")
    url = reverse("admin:exports_company_change", args=[company.pk])

    idle = admin_client.get(url).content.decode()
    assert "exports/live_status.js" in idle
    assert 'data-live-active="0"' in idle

    _queue(company)
    queued = admin_client.get(url).content.decode()
    assert 'data-live-active="1"' in queued
    assert f'data-live-status-url="{reverse(STATUS_URL)}?company={company.pk}"' in queued

    index = admin_client.get(reverse("admin:index")).content.decode()
    assert 'data-live-field="last_check"' in index and "exports/live_status.js" in index


def test_check_now_links_to_the_job_or_the_audit_entries(admin_client, monkeypatch):
    monkeypatch.setattr("exports.services.dispatch.async_task", lambda *a, **k: None)
    company = make_company(name="Alpha")
    url = reverse("admin:exports_company_check_now", args=[company.pk])

    response = admin_client.post(url, follow=True)
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    audit_list = (
        reverse("admin:exports_auditentry_changelist") + f"?company__id__exact={company.pk}"
    )
    assert f'href="{audit_list}"' in message
    assert f'href="{audit_list}"' in response.content.decode()  # rendered as a link

    job = make_job(company, seen_via=Trigger.WEBHOOK)
    Company.objects.filter(pk=company.pk).update(check_queued_at=None)
    response = admin_client.post(url, follow=True)
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    assert reverse("admin:exports_exportjob_change", args=[job.pk]) in message
