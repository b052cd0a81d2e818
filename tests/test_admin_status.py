"""The admin index's at-a-glance status: per company the last check, the job in progress with its
expiry countdown, failures in the last day, credentials to re-authorise; at-risk jobs stand out;
a fixed number of queries whatever the number of companies."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from exports import clock
from exports.models import AuditEntry, Credential, ExportJob
from exports.selectors.index_status import index_status_build
from tests.factories import make_audit, make_company, make_credential, make_job

pytestmark = pytest.mark.django_db


def job(company, *, minutes_since_update: float, expires_in=3600):
    now = clock.now()
    return make_job(
        company,
        status=ExportJob.Status.IN_PROGRESS,
        created_at=now - timedelta(hours=2),
        last_updated_at=now - timedelta(minutes=minutes_since_update),
        expires_in=expires_in,
        claim=ExportJob.Claim.OURS,
    )


@pytest.fixture
def scene():
    calm = make_company(name="Calm")
    busy = make_company(name="Busy")
    risky = make_company(name="Risky")
    broken = make_company(
        name="Broken",
        credential=make_credential(
            name="Broken key", status=Credential.Status.NEEDS_REAUTHORISATION
        ),
    )
    job(busy, minutes_since_update=10)  # 50 min left
    risky_job = job(risky, minutes_since_update=50)  # 10 min left: < 25 % of the hour
    for _ in range(2):
        make_audit(risky, "error", "Pleo is unreachable", outcome=AuditEntry.Outcome.ERROR)
    return calm, busy, risky, broken, risky_job


def test_status_per_company(scene):
    calm, busy, risky, broken, risky_job = scene
    status = index_status_build()
    rows = {row.company.name: row for row in status.rows}
    assert rows["Calm"].job is None and not rows["Calm"].needs_attention
    assert rows["Busy"].job.seconds_left == pytest.approx(50 * 60, abs=5)
    assert not rows["Busy"].job.at_risk
    assert rows["Risky"].job.at_risk and rows["Risky"].job.pk == risky_job.pk
    assert rows["Risky"].failures_24h == 2
    assert rows["Broken"].credential_problem == "needs re-authorisation"
    # Attention first.
    assert {row.company.name for row in status.rows[:2]} == {"Risky", "Broken"}
    assert (status.jobs_in_progress, status.at_risk, status.failures_24h, status.reauthorise) == (
        2,
        1,
        2,
        1,
    )


def test_old_failures_do_not_count(scene):
    clock.advance(25 * 3600)
    status = index_status_build()
    assert status.failures_24h == 0


def test_the_index_shows_it_and_at_risk_jobs_stand_out(admin_client, scene):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert 'id="export-status"' in html
    assert "1 at risk of expiry" in html
    assert 'class="at-risk"' in html
    assert re.search(r"⚠ (9|10)m \d\ds", html)
    assert "needs re-authorisation" in html
    assert "Site administration" in html  # the app list is still there


def test_queries_do_not_grow_with_the_number_of_companies(admin_client, scene):
    def count():
        with CaptureQueriesContext(connection) as captured:
            index_status_build()
        return len(captured.captured_queries)

    before = count()
    for i in range(30):
        job(make_company(name=f"More {i}"), minutes_since_update=5)
    assert count() == before <= 5


def test_users_without_view_permission_do_not_see_it(client, django_user_model, scene):
    user = django_user_model.objects.create_user("staff", password="pw-for-tests", is_staff=True)
    client.force_login(user)
    html = client.get(reverse("admin:index")).content.decode()
    assert 'id="export-status"' not in html
