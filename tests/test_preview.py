"""Preview (dry run) of a pending job against the Pleo sandbox: it finds an item without an
account, says where to fix it, and passes once the account is set in Pleo; nothing is booked or
sent, the job stays pending and the company's lease is never taken."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from exports.models import Company, ExportItemRecord, JournalEntry
from exports.pleo import ItemFailureReasonType
from exports.services.preview import FIX_IN_PLEO_EXPENSE, PreviewStatus, job_preview
from tests import lifecycle_support

pytestmark = pytest.mark.django_db

env = lifecycle_support.env  # the sandbox company of the lifecycle tests (a fixture)


def _give_accounts(env, job_id) -> None:
    """In Pleo, the bookkeeper picks an account for every line of the job's items."""
    for item in env.state.store.jobs[job_id].export_items.values():
        for line in item["accountingEntryLines"]:
            line["account"] = line["account"] or {"code": "4000", "name": "Other costs"}


def _writes(env) -> list[dict]:
    return [r for r in env.state.requests() if r["method"] != "GET"]


def test_a_preview_finds_a_missing_account_and_passes_after_the_fix(env):
    job_id = env.job(["normal", "missing_account"])
    missing = next(i for i in env.pleo(job_id)["items"] if i["kind"] == "missing_account")
    report = job_preview(company=env.company)
    assert report.status == PreviewStatus.FAILS and str(report.pleo_job_id) == job_id
    assert report.validation.ok
    [failing] = report.failing
    assert str(failing.accounting_entry_id) == missing["accountingEntryId"]
    assert failing.failure_type == ItemFailureReasonType.ACCOUNT_UNKNOWN
    assert "no expense account" in failing.message and failing.fix_where == FIX_IN_PLEO_EXPENSE
    assert failing.link.startswith("https://app.pleo.io/export/")

    _give_accounts(env, job_id)
    assert job_preview(company=env.company).status == PreviewStatus.PASSES

    # Nothing booked, nothing sent, the job still pending and never ours; no lease taken.
    assert env.pleo(job_id)["job"]["status"] == "pending"
    assert _writes(env) == []
    assert not JournalEntry.objects.exists() and not ExportItemRecord.objects.exists()
    assert Company.objects.get(pk=env.company.pk).lease_token is None


def test_preview_export_command_exits_1_on_failures_and_0_when_all_pass(env, capsys):
    job_id = env.job(["missing_account"])
    company = str(env.company.pleo_company_id)
    with pytest.raises(CommandError) as failed:
        call_command("preview_export", "--company", company, "--json")
    assert failed.value.returncode == 1
    out = json.loads(capsys.readouterr().out)
    assert (out["status"], out["failing"]) == ("fails", 1)
    assert out["results"][0]["failure_type"] == "account_unknown"
    _give_accounts(env, job_id)
    call_command("preview_export", "--company", company)
    assert "1 of 1 items would pass" in capsys.readouterr().out


def test_a_preview_of_a_job_that_is_no_longer_pending_is_unavailable_and_says_why(env):
    job_id = env.job(1)
    env.state.set_job_status(job_id, "in_progress")
    report = job_preview(company=env.company, pleo_job_id=job_id)
    assert report.status == PreviewStatus.UNAVAILABLE and "not pending" in report.reason
    assert not report.ok


def test_a_preview_refused_by_pleo_is_unavailable_with_pleos_answer(env):
    env.job(1)
    env.state.add_fault(
        "status",
        "GET",
        "/v3/export-items",
        status=400,
        body={"type": "EXPORT_JOB_NOT_STARTED", "message": "Not for pending jobs"},
        count=1,
    )
    report = job_preview(company=env.company)
    assert report.status == PreviewStatus.UNAVAILABLE
    assert "400" in report.reason and "Not for pending jobs" in report.reason


def test_nothing_pending_passes(env):
    assert job_preview(company=env.company).status == PreviewStatus.NOTHING_PENDING


def test_the_preview_pages_run_on_post_only_and_show_the_report(env, client):
    job_id = env.job(["missing_account"])
    user = User.objects.create_user("op", "op@example.com", None, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_company", "view_exportjob", "view_all_companies"]
        )
    )
    client.force_login(user)
    company_page = client.get(reverse("admin:exports_company_change", args=[env.company.pk]))
    assert "Preview next job" in company_page.content.decode()
    url = reverse("admin:exports_company_preview", args=[env.company.pk])
    assert "preview-report" not in client.get(url).content.decode()
    assert env.state.requests() == []  # a GET makes no Pleo call
    page = client.post(url).content.decode()
    assert 'data-status="fails"' in page and "account_unknown" in page
    assert "Pleo (its account" in page or "the expense in Pleo" in page
    assert env.pleo(job_id)["job"]["status"] == "pending"


def test_a_pending_jobs_page_previews_that_job(env, admin_client):
    from tests.factories import make_job

    job_id = env.job(["normal", "missing_account"])
    job = make_job(env.company, pleo_job_id=job_id)
    page = admin_client.get(reverse("admin:exports_exportjob_change", args=[job.pk]))
    assert "Preview this job" in page.content.decode()
    url = reverse("admin:exports_exportjob_preview", args=[job.pk])
    report = admin_client.post(url).content.decode()
    assert 'data-status="fails"' in report and job_id in report
