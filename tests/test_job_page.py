"""The job page grouped (Pleo's view, ours, timing), the expiry as a countdown
and ``expiresIn`` as a duration, "None yet." on empty inlines, run ids linking to their audit
entries, the payload labelled as last received with its time; every timestamp with seconds, the
display zone and a relative time."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from exports import clock
from exports.admin.job_page import JOB_FIELDSETS
from exports.models import AuditEntry, ExportJob, Trigger
from tests.factories import make_audit, make_company, make_job

pytestmark = pytest.mark.django_db


def _job(company, **extra) -> ExportJob:
    now = clock.now()
    return make_job(
        company,
        **{
            "status": ExportJob.Status.IN_PROGRESS,
            "created_at": now - timedelta(minutes=20),
            "last_updated_at": now - timedelta(minutes=15),
            "seen_via": Trigger.WEBHOOK,
            "last_payload": {"id": "x", "status": "in_progress", "expiresIn": 3600},
            "payload_received_at": now - timedelta(minutes=3),
            **extra,
        },
    )


def _page(admin_client, job) -> str:
    response = admin_client.get(reverse("admin:exports_exportjob_change", args=[job.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_job_page_is_grouped_and_every_field_has_its_place(admin_client):
    page = _page(admin_client, _job(make_company()))
    for title, _fields, _ in JOB_FIELDSETS:
        assert f">{title}<" in page.replace("&#x27;", "'"), title
    shown = {name for _, fields, _ in JOB_FIELDSETS for name in fields}
    replaced = {"id", "expires_in", "last_payload", "payload_received_at", "claim_run_id"}
    missing = {f.name for f in ExportJob._meta.concrete_fields} - shown - replaced
    assert not missing


def test_expiry_countdown_and_expires_in_as_a_duration(admin_client):
    page = _page(admin_client, _job(make_company()))
    # lastUpdatedAt 15 minutes ago + 3600 s: 45 minutes left.
    assert re.search(r"in (44 min 5\d s|45 min)", page), page
    assert "1 h (3600 s)" in page


def test_empty_inlines_say_none_yet(admin_client):
    page = _page(admin_client, _job(make_company()))
    assert page.count("None yet.") == 2


def test_run_ids_link_to_the_audit_entries_of_their_run(admin_client):
    company = make_company()
    run, other_run = uuid.uuid4(), uuid.uuid4()
    job = _job(company, claim=ExportJob.Claim.OURS, claim_run_id=run)
    make_audit(company, "started", "ours", trigger=Trigger.MANUAL, run_id=run, export_job=job)
    make_audit(
        company, "listed", "theirs", trigger=Trigger.MANUAL, run_id=other_run, export_job=job
    )
    page = _page(admin_client, job)
    link = reverse("admin:exports_auditentry_changelist") + f"?run_id={run}"
    assert f'href="{link}"' in page
    assert "None yet." in page  # the items; the audit inline has rows

    listed = admin_client.get(link).content.decode()
    assert ">ours<" in listed and ">theirs<" not in listed
    assert AuditEntry.objects.count() == 2


def test_the_payload_is_labelled_as_last_received_with_its_time(admin_client):
    page = _page(admin_client, _job(make_company()))
    assert "As last received from Pleo (received <time" in page
    assert "(3 min ago)" in page
    assert "&quot;expiresIn&quot;: 3600" in page


def test_timestamps_have_seconds_the_zone_and_a_relative_time(admin_client, settings):
    company = make_company(name="Zoned")
    checked = datetime(2025, 3, 4, 11, 14, 5, tzinfo=UTC)
    job = _job(company, created_at=checked)
    company.last_check_at = checked
    company.save(update_fields=["last_check_at"])

    page = _page(admin_client, job)
    assert "2025-03-04 11:14:05 UTC" in page
    assert re.search(r"2025-03-04 11:14:05 UTC</time> <span[^>]*>\(\d+ days ago\)", page)

    settings.DISPLAY_TIME_ZONE = "Europe/Copenhagen"
    page = _page(admin_client, job)
    assert "2025-03-04 12:14:05 CET" in page
    changelist = admin_client.get(reverse("admin:exports_company_changelist")).content.decode()
    assert "2025-03-04 12:14:05 CET" in changelist  # a list column, the same way
    # Stored as it was: TIME_ZONE stays UTC.
    assert settings.TIME_ZONE == "UTC"
    company.refresh_from_db()
    assert company.last_check_at == checked


def test_an_unknown_display_time_zone_stops_the_process_naming_the_setting():
    from tests.test_settings import _check

    result = _check({"DEBUG": "1", "DISPLAY_TIME_ZONE": "Mars/Olympus_Mons"})
    assert result.returncode != 0
    assert "DISPLAY_TIME_ZONE='Mars/Olympus_Mons' is not a time zone name" in result.stderr
    assert _check({"DEBUG": "1", "DISPLAY_TIME_ZONE": "Europe/Copenhagen"}).returncode == 0
