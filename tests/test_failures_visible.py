"""No failure that looks like success.

Against the Pleo sandbox over real HTTP, on the product's clock; what the operator sees is read
from the admin pages with the Django test client.

1. A job of ours that expires (or that Pleo fails) while we export it, or that recovery finds so,
   is an ERROR with Pleo's reason and what to do, counts as a failure (index, company outcome),
   and ``check_exports`` reports ``job_expired`` / ``failed_job`` and exits 1.
2. Repeated failures: the company and the job count attempts, keep when the failing began, when
   the next retry comes and the last error; the audit gets a row when the error changes and at
   least hourly; success clears it all.
3. Every failed outcome carries its reason, shown on the company page with its recent jobs and
   audit entries.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.urls import reverse

from exports import clock
from exports.models import AuditEntry, Company, ExportJob, Notification, Trigger
from exports.notifications.kinds import Kind
from exports.services.start_flow import Outcome
from tests import test_notification_hooks
from tests.factories import make_sandbox_company_and_key
from tests.test_notification_hooks import expire_while_booking

pytestmark = pytest.mark.django_db

EXPORT_ITEMS = "/v3/export-items"
EVENTS = "/v3/export-job-events"


class Env(test_notification_hooks.Env):
    """The notification tests' sandbox company, read afresh from the database on demand."""

    def fresh(self) -> Company:
        return Company.objects.get(pk=self.company.pk)


@pytest.fixture
def env(pleo_sandbox, settings):
    settings.PLEO_MAX_ATTEMPTS = 2
    settings.PLEO_BACKOFF_BASE = 0
    settings.PLEO_BACKOFF_MAX = 0
    settings.PLEO_RETRY_AFTER_CAP = 0  # a 429 fails at once (no sleeping in tests)
    settings.RECOVERY_RETRY_SECONDS = 60
    remote, key, company = make_sandbox_company_and_key(pleo_sandbox, remote_name="Sandbox Acme")
    return Env(pleo_sandbox, pleo_sandbox.state, remote, key, company)


@pytest.fixture
def operator(client):
    user = User.objects.create_superuser("operator", "op@example.com", "pw")
    client.force_login(user)
    return client


def page(client, name, *args) -> str:
    response = client.get(reverse(name, args=args))
    assert response.status_code == 200
    return response.content.decode()


# --- 1. a job of ours that expires or fails in Pleo -------------------------------------------


def test_a_job_expiring_mid_export_is_an_error_that_counts_as_a_failure(env, monkeypatch, operator):
    expire_while_booking(env, monkeypatch)
    job_id = env.job(2)
    result = env.run()
    assert (result.outcome, str(result.job_id)) == (Outcome.JOB_EXPIRED, job_id)
    what_to_do = "Ask the bookkeeper to export again from Pleo; 0 items were booked and reported"
    assert "job_expired" in result.error and what_to_do in result.error

    ended = AuditEntry.objects.get(step="job_ended")
    assert ended.outcome == AuditEntry.Outcome.ERROR
    assert "The job expired in Pleo while reporting item outcomes" in ended.message
    assert "(job_expired: " in ended.message
    assert "0 items were booked and reported, 2 were not." in ended.message
    assert "2 of those were booked in the accounting system but not reported" in ended.message

    company = env.fresh()
    assert company.last_check_outcome == "job_expired"
    assert what_to_do in company.last_check_error
    assert company.failing_since is None  # nothing is retried: not "failing", but failed
    job = ExportJob.objects.get(pleo_job_id=job_id)
    assert job.next_retry_at is None and "job_expired" in job.last_error

    index = page(operator, "admin:index")
    assert "1 failure in the last day" in index
    assert "0 failures in the last day" not in index
    assert "⚠ The job expired in Pleo" in index  # the company's row says why
    company_page = page(operator, "admin:exports_company_change", env.company.pk)
    assert "job_expired" in company_page and what_to_do in company_page
    # The notification hook still fires, once.
    assert [n.kind for n in Notification.objects.all()] == [Kind.JOB_FAILED]


def test_check_exports_reports_job_expired_and_exits_1(env, monkeypatch, capsys):
    expire_while_booking(env, monkeypatch)
    job_id = env.job(2)
    with pytest.raises(CommandError) as failed:
        call_command("check_exports", "--json", "--company", str(env.company.pleo_company_id))
    assert failed.value.returncode == 1
    line = json.loads(capsys.readouterr().out.strip())
    assert (line["outcome"], line["job_id"]) == ("job_expired", job_id)
    assert "export again from Pleo" in line["error"]


@pytest.mark.parametrize(
    ("reason_type", "outcome"),
    [("job_expired", "job_expired"), ("accounting_system_unreachable", "failed_job")],
)
def test_recovery_finding_our_job_failed_in_pleo_is_an_error(env, reason_type, outcome):
    job_id = env.job(2)
    fault = env.state.add_fault("status", "GET", EXPORT_ITEMS, status=503, count=None)
    assert env.run().outcome == Outcome.STARTED  # paused
    env.state.remove_fault(fault.id)
    env.state.set_job_status(
        job_id, "failed", failure_reason_type=reason_type, failure_reason="Pleo's own words"
    )
    result = env.run(recover=True)
    assert (result.outcome, str(result.job_id)) == (outcome, job_id)
    assert f"({reason_type}: Pleo's own words)" in result.error
    ended = AuditEntry.objects.get(step="job_ended")
    assert ended.outcome == AuditEntry.Outcome.ERROR
    assert ended.message.startswith("Recovery: ")
    assert "export again from Pleo" in ended.message
    assert not AuditEntry.objects.filter(step="finished_elsewhere").exists()
    company = env.fresh()
    assert company.last_check_outcome == outcome
    assert company.failing_since is None
    assert Notification.objects.filter(kind=Kind.JOB_FAILED).count() == 1


def test_a_job_completed_by_someone_else_stays_finished_elsewhere(env):
    job_id = env.job(2)
    fault = env.state.add_fault("status", "GET", EXPORT_ITEMS, status=503, count=None)
    assert env.run().outcome == Outcome.STARTED
    env.state.remove_fault(fault.id)
    env.state.set_job_status(job_id, "completed")
    assert env.run(recover=True).outcome == Outcome.NOTHING_PENDING
    entry = AuditEntry.objects.get(step="finished_elsewhere")
    assert entry.outcome == AuditEntry.Outcome.INFO
    assert env.fresh().failing_since is None


# --- 2. repeated failures ---------------------------------------------------------------------


def paused_entries() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(step="paused").order_by("id"))


def test_repeated_429s_are_counted_shown_and_audited_on_change_and_hourly(env, operator):
    job_id = env.job(2, expires_in=6 * 3600)
    fault = env.state.add_fault("rate_limit", "GET", EXPORT_ITEMS, count=None)
    first = clock.now()
    assert env.run().outcome == Outcome.STARTED  # paused on the 429
    for _ in range(4):
        env.advance(120)
        result = env.run(recover=True)
        assert result.outcome == Outcome.RESUMED
        assert "429" in result.error  # the run says why it stopped

    company, job = env.fresh(), ExportJob.objects.get(pleo_job_id=job_id)
    for failing in (company, job):
        assert failing.attempts == 5
        assert abs((failing.failing_since - first).total_seconds()) < 5
        assert failing.next_retry_at == pytest.approx(
            clock.now() + timedelta(seconds=60), abs=timedelta(seconds=5)
        )
        assert "429" in failing.last_error
    assert company.last_check_outcome == "resumed"
    assert "429" in company.last_check_error  # never "resumed" with no error while failing
    assert len(paused_entries()) == 1  # the same error: one row, counted on the rows above

    company_page = page(operator, "admin:exports_company_change", env.company.pk)
    assert "⚠ Failing since" in company_page
    assert "5 attempts, next retry at" in company_page
    assert "last error: Pleo call failed: 429" in company_page
    assert job_id in company_page  # its recent jobs
    assert "All audit entries of this company" in company_page
    job_page = page(operator, "admin:exports_exportjob_change", job.pk)
    assert "5 attempts, next retry at" in job_page
    index = page(operator, "admin:index")
    assert "⚠ Failing since" in index and "5 attempts" in index

    # An hour on, the same failure is audited again (at least once an hour while it lasts).
    env.advance(3600)
    env.run(recover=True)
    assert len(paused_entries()) == 2
    assert "(Attempt 6, failing since" in paused_entries()[-1].message
    env.advance(120)
    env.run(recover=True)
    assert len(paused_entries()) == 2

    # Another error: a new row at once.
    env.state.remove_fault(fault.id)
    fault = env.state.add_fault("status", "GET", EXPORT_ITEMS, status=503, count=None)
    env.advance(120)
    env.run(recover=True)
    assert len(paused_entries()) == 3
    assert "503" in paused_entries()[-1].message
    assert env.fresh().attempts == 8

    # Success clears the failing state of the company and the job.
    env.state.remove_fault(fault.id)
    env.advance(120)
    assert env.run(recover=True).outcome == Outcome.COMPLETED
    company, job = env.fresh(), ExportJob.objects.get(pleo_job_id=job_id)
    for cleared in (company, job):
        assert (cleared.failing_since, cleared.attempts, cleared.next_retry_at) == (None, 0, None)
        assert cleared.last_error == ""
    assert company.last_check_error == ""
    assert "Not failing." in page(operator, "admin:exports_company_change", env.company.pk)


def test_a_failed_run_repeated_is_counted_and_audited_hourly(env):
    env.job(1, expires_in=6 * 3600)
    fault = env.state.add_fault("status", "GET", "/v3/export-jobs", status=503, count=None)
    for _ in range(3):
        assert env.run().outcome == Outcome.FAILED
        env.advance(300)
    company = env.fresh()
    assert company.attempts == 3
    assert "503 SERVICE_UNAVAILABLE" in company.last_error
    assert company.next_retry_at is not None
    errors = AuditEntry.objects.filter(step="error")
    assert errors.count() == 1
    env.advance(3600)
    assert env.run().outcome == Outcome.FAILED
    assert errors.count() == 2
    env.state.remove_fault(fault.id)
    assert env.run().outcome == Outcome.COMPLETED
    assert env.fresh().failing_since is None


def test_an_unexpected_exception_counts_one_attempt(env, monkeypatch):
    from exports.services import start_flow
    from exports.services.company_guard import company_check_guarded

    def boom(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(start_flow, "jobs_detect_and_start", boom)  # inside the run, lease held
    result = company_check_guarded(company=env.fresh(), trigger=Trigger.SCHEDULE)
    assert result.outcome == Outcome.FAILED
    company = env.fresh()
    assert (company.attempts, company.last_error) == (1, "Unexpected error: RuntimeError: boom")
    assert company.lease_token is None


# --- 3. every failed outcome carries its reason -----------------------------------------------


def test_a_5xx_failed_outcome_shows_its_reason_on_the_company_page(env, operator):
    env.job(1)
    env.state.add_fault(
        "status", "POST", EVENTS, status=503, count=None, body_match={"event": "started"}
    )
    result = env.run()
    assert result.outcome == Outcome.FAILED
    assert "'started' was sent 3 times with no known outcome" in result.error
    assert "(last answer: 503 SERVICE_UNAVAILABLE" in result.error  # what Pleo said, not just "3"
    company = env.fresh()
    assert company.last_check_outcome == "failed"
    assert "'started' was sent 3 times" in company.last_check_error
    assert company.attempts == 1 and company.failing_since is not None

    company_page = page(operator, "admin:exports_company_change", env.company.pk)
    assert "started&#x27; was sent 3 times with no known outcome" in company_page
    assert "⚠ Failing since" in company_page
    assert "start_unknown" in company_page  # its recent audit entries
    assert (
        reverse("admin:exports_auditentry_changelist") + f"?company__id__exact={env.company.pk}"
        in company_page
    )


# --- the documented outcomes ------------------------------------------------------------------


def test_the_readme_and_the_command_list_every_outcome_check_exports_can_print():
    from pathlib import Path

    from exports.management.commands.check_exports import Command

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Command line") : readme.index("## Configuration")]
    outcomes = {
        value for name, value in vars(Outcome).items() if name.isupper() and isinstance(value, str)
    }
    assert {"job_expired", "failed_job", "completed", "finished_elsewhere"} <= outcomes
    for outcome in outcomes:
        assert f"`{outcome}`" in section, outcome
        assert outcome in Command.help, outcome
