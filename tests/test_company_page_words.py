"""What the failure walk (``tests/browser/test_failure_walk.py``) found on the company page:

- its last check outcome read as a code (``job_expired``, ``resumed``) where the index says
  "Job expired in Pleo": the company page, its list and its live refresh use the same words;
- its recent jobs and audit entries were plain tables 555 px wide on a 390 px phone: they stack
  on narrow screens like the index's table (``table.stack-narrow`` with a header row that
  ``admin-narrow.js`` labels the cells from).
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from exports import clock
from exports.models import AuditEntry, Company, ExportJob, Trigger
from tests.factories import make_company, make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def expired_company():
    company = make_company(name="Nordlys ApS")
    Company.objects.filter(pk=company.pk).update(
        last_check_at=clock.now(),
        last_check_outcome="job_expired",
        last_check_error="The job expired in Pleo (job_expired: …). Ask the bookkeeper to export "
        "again from Pleo; 0 items were booked and reported, 2 were not.",
    )
    job = make_job(
        company,
        status=ExportJob.Status.FAILED,
        last_updated_at=clock.now(),
        claim=ExportJob.Claim.OURS,
    )
    AuditEntry.objects.create(
        created_at=clock.now(),
        company=company,
        export_job=job,
        trigger=Trigger.SCHEDULE,
        step="job_ended",
        message="The job expired in Pleo.",
        outcome=AuditEntry.Outcome.ERROR,
    )
    return company


def _readonly(html: str, field: str) -> str:
    found = re.search(
        rf'class="[^"]*field-{field}[^"]*">.*?<div class="readonly">(.*?)</div>', html, re.S
    )
    assert found, f"no read-only field {field} on the page"
    return " ".join(found.group(1).split())


def test_the_company_page_says_the_outcome_in_words(admin_client, expired_company):
    html = admin_client.get(
        reverse("admin:exports_company_change", args=[expired_company.pk])
    ).content.decode()
    assert _readonly(html, "last_check_result") == "Job expired in Pleo"
    assert "field-last_check_outcome" not in html  # the code is not a field of the page


def test_the_company_list_says_the_outcome_in_words(admin_client, expired_company):
    html = admin_client.get(reverse("admin:exports_company_changelist")).content.decode()
    assert '<td class="field-last_check_result">Job expired in Pleo</td>' in html
    assert ">job_expired</td>" not in html


def test_the_live_status_sends_the_words_for_the_page(admin_client, expired_company):
    status = admin_client.get(
        reverse("admin:exports_live_status"), {"company": expired_company.pk}
    ).json()
    assert status["fields"]["last_check_result"] == "Job expired in Pleo"
    assert status["fields"]["last_check_outcome"] == "job_expired"  # the code, for scripts


def test_recent_jobs_and_audit_stack_on_narrow_screens(admin_client, expired_company):
    html = admin_client.get(
        reverse("admin:exports_company_change", args=[expired_company.pk])
    ).content.decode()
    for name in ("recent-jobs", "recent-audit"):
        table = re.search(rf'<table class="([^"]*\b{name}\b[^"]*)">(.*?)</table>', html, re.S)
        assert table, name
        assert "stack-narrow" in table.group(1).split(), table.group(1)
        assert table.group(2).lstrip().startswith("<thead><tr><th>"), table.group(2)[:80]
        assert "<tbody>" in table.group(2)


def test_the_company_list_filters_outcomes_in_words(admin_client):
    from exports.models import Company
    from tests.factories import make_company

    make_company(name="Expired Co", last_check_outcome="job_expired")
    make_company(name="Calm Co", last_check_outcome="nothing_pending")
    page = admin_client.get("/admin/exports/company/").content.decode()
    assert "Job expired in Pleo" in page and "Nothing pending" in page
    filtered = admin_client.get("/admin/exports/company/?last_check_outcome__exact=job_expired")
    assert [c.name for c in filtered.context["cl"].result_list] == ["Expired Co"]
    assert Company.objects.count() == 2
