"""The index's status panel as an operator reads it. Each count leads to the list
that shows what it counts; outcomes read as words; the budget line names credentials, not
internal keys; the worker's and the poll tick's health (``/healthz``'s checks) are on it, for
those who see every company."""

from __future__ import annotations

import html as html_lib
import re
from datetime import timedelta

import pytest
from django.urls import reverse

from exports import clock
from exports.models import AuditEntry, Credential, ExportJob, WorkerHeartbeat
from exports.services import budget
from exports.services.outcome_labels import OUTCOME_LABELS, outcome_label
from exports.services.start_flow import Outcome
from tests.factories import make_audit, make_company, make_credential
from tests.test_admin_status import job as in_progress_job

pytestmark = pytest.mark.django_db


def error(company, message: str) -> None:
    make_audit(company, "error", message, outcome=AuditEntry.Outcome.ERROR)


@pytest.fixture
def scene():
    calm = make_company(name="Calm", last_check_outcome=Outcome.NOTHING_PENDING)
    busy = make_company(name="Busy", last_check_outcome=Outcome.COMPLETED_WITH_ERRORS)
    risky = make_company(name="Risky", last_check_outcome=Outcome.RESUMED)
    for company in (calm, busy, risky):
        company.last_check_at = clock.now()
        company.save(update_fields=["last_check_at"])
    broken = make_credential(name="Broken key", status=Credential.Status.NEEDS_REAUTHORISATION)
    # Two companies share the broken credential: one credential to fix, not two.
    make_company(name="Broken one", credential=broken)
    make_company(name="Broken two", credential=broken)
    make_company(name="Gone", active=False)
    in_progress_job(busy, minutes_since_update=10)  # 50 min left
    risky_job = in_progress_job(risky, minutes_since_update=50)  # 10 min left: at risk
    error(risky, "old failure")
    clock.advance(2 * 24 * 3600)  # the old failure is two days old now
    for job in ExportJob.objects.all():  # the jobs keep their minutes left
        job.last_updated_at += timedelta(days=2)
        job.save(update_fields=["last_updated_at"])
    error(risky, "Pleo is unreachable")
    error(risky, "Pleo is unreachable again")
    return {"calm": calm, "busy": busy, "risky": risky, "risky_job": risky_job}


def index(client) -> str:
    return client.get(reverse("admin:index")).content.decode()


def href(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"><a href="([^"]+)"', page)
    assert found, element_id
    return html_lib.unescape(found.group(1))


def listed(client, url: str) -> list:
    response = client.get(url)
    assert response.status_code == 200, url
    assert "?e=1" not in response.get("Location", "")
    return list(response.context["cl"].result_list)


def test_each_count_links_to_its_filtered_list(admin_client, scene):
    page = index(admin_client)
    assert "5 active companies" in page and "2 jobs in progress" in page
    assert "1 at risk of expiry" in page and "2 failures in the last day" in page
    assert "1 credential to fix" in page

    companies = listed(admin_client, href(page, "status-companies"))
    assert len(companies) == 5 and "Gone" not in {c.name for c in companies}
    assert len(listed(admin_client, href(page, "status-jobs"))) == 2
    assert listed(admin_client, href(page, "status-at-risk")) == [scene["risky_job"]]
    failures = listed(admin_client, href(page, "status-failures"))
    assert sorted(entry.message for entry in failures) == [
        "Pleo is unreachable",
        "Pleo is unreachable again",
    ]
    assert [c.name for c in listed(admin_client, href(page, "status-credentials"))] == [
        "Broken key"
    ]
    # A company's own failure count leads to its failures of the last day, not older ones.
    row = re.search(
        rf"data-company=\"{scene['risky'].pk}\".*?<a class=\"risk\" href=\"([^\"]+)\">2</a>",
        page,
        re.S,
    )
    assert row, "the risky company's failure count is a link"
    assert len(listed(admin_client, html_lib.unescape(row.group(1)))) == 2


def test_outcomes_read_as_words(admin_client, scene):
    page = index(admin_client)
    for company, words in (
        ("calm", "Nothing pending"),
        ("busy", "Completed with errors"),
        ("risky", "Resumed a job"),
    ):
        row = re.search(rf"data-company=\"{scene[company].pk}\">(.*?)</tr>", page, re.S).group(1)
        assert words in row, (company, row)
        assert f"· {scene[company].last_check_outcome}" not in row
    assert "completed_with_errors</td>" not in page


def test_every_outcome_has_a_label_in_one_map():
    codes = {
        value for name, value in vars(Outcome).items() if name.isupper() and isinstance(value, str)
    }
    assert codes <= set(OUTCOME_LABELS)
    assert all(OUTCOME_LABELS[code] != code for code in codes)
    assert outcome_label("some_new_code") == "Some new code"  # a code added later reads well
    assert outcome_label("") == ""


def test_the_budget_line_names_credentials_not_internal_keys(admin_client, settings):
    settings.PLEO_RATE_LIMIT_PER_MINUTE = 10
    company = make_company(name="Nordlys", credential=make_credential(name="Nordlys API key"))
    for _ in range(3):
        budget.budget_consume(key=budget.budget_key_for(credential=company.credential))
    line = re.search(r'id="status-budget">(.*?)</p>', index(admin_client), re.S).group(1)
    assert "Nordlys API key: 3 of 10 requests this minute (30 %)" in line
    assert "credential:" not in line and "budget '" not in line


def test_worker_and_poll_health_from_the_health_checks(admin_client, scene):
    page = index(admin_client)
    health = re.search(r'id="status-health">(.*?)</ul>', page, re.S).group(1)
    assert "Worker</a>: ⚠ no worker heartbeat recorded" in health
    assert "Poll</a>: ⚠ no poll tick completed yet" in health
    now = clock.now()
    WorkerHeartbeat.objects.create(name="worker-1", started_at=now, last_seen_at=now)
    WorkerHeartbeat.objects.create(name=WorkerHeartbeat.TICK, started_at=now, last_seen_at=now)
    health = re.search(r'id="status-health">(.*?)</ul>', index(admin_client), re.S).group(1)
    assert "Worker</a>: ok, last seen 0 s ago" in health
    assert "Poll</a>: ok, last completed 0 s ago" in health
    assert 'class="bad"' not in health


def test_a_company_scoped_user_sees_their_companies_and_no_worker_health(client):
    from tests.admin_scene import OUTSIDER, build_scene

    scene = build_scene()
    client.force_login(scene.users["scoped"])
    page = index(client)
    assert 'id="export-status"' in page
    assert OUTSIDER not in page
    assert 'id="status-health"' not in page
    for element in ("status-companies", "status-failures", "status-credentials"):
        response = client.get(href(page, element))
        assert response.status_code == 200 and OUTSIDER not in response.content.decode()
