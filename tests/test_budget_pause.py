"""A request budget spent in the middle of the export lifecycle is a normal pause, not an error.

The run is deferred with one INFO "deferred" audit entry that says when the company may run
again, no ERROR entry; the sweep picks the company up then, and the next run finishes the job
with nothing booked, reported or sent twice. Against the Pleo sandbox over real HTTP.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, timedelta

import pytest

from exports import clock
from exports.models import AuditEntry, Company, ExportJob, JournalEntry, Trigger
from exports.pleo import BudgetExhausted
from exports.services import budget
from exports.services.start_flow import Outcome, company_check_run
from exports.services.sweep import leases_sweep_stale
from tests.factories import make_sandbox_company

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_budget")]

EVENTS = "/v3/export-job-events"


@pytest.fixture
def sandbox_company(pleo_sandbox, settings):
    settings.PLEO_MAX_ATTEMPTS = 2
    settings.PLEO_BACKOFF_BASE = 0
    settings.PLEO_BACKOFF_MAX = 0
    settings.PLEO_ITEMS_BATCH_SIZE = 100
    settings.PLEO_RATE_LIMIT_PER_MINUTE = 500
    settings.PLEO_RATE_LIMIT_BACKEND = "database"
    remote, company = make_sandbox_company(pleo_sandbox, name="Pause Acme")
    return pleo_sandbox.state, remote, company


def refuse(monkeypatch, method: str, path: str, occurrence: int, retry_at) -> list[str]:
    """The budget refuses the ``occurrence``-th call matching ``method`` and ``path`` (a regex)."""
    real = budget.BudgetHook.__call__
    matching: list[str] = []
    refused: list[str] = []

    def call(self, called_method, called_path):
        if called_method == method and re.search(path, called_path):
            matching.append(called_path)
            if len(matching) == occurrence:
                refused.append(f"{called_method} {called_path}")
                raise BudgetExhausted(
                    "our request budget 'test' is spent", retry_at=retry_at, key=self.key
                )
        return real(self, called_method, called_path)

    monkeypatch.setattr(budget.BudgetHook, "__call__", call)
    return refused


@pytest.mark.parametrize(
    ("method", "path", "occurrence"),
    [
        pytest.param("GET", r"^/v3/export-jobs/[^/]+/items$", 1, id="reading-job-items"),
        pytest.param("GET", r"^/v3/export-items$", 1, id="reading-export-items"),
        pytest.param("PUT", r"^/v3/export-jobs/[^/]+/items$", 1, id="reporting-items"),
        pytest.param("POST", rf"^{EVENTS}$", 2, id="final-event"),  # the 1st is 'started'
    ],
)
def test_a_budget_spent_mid_lifecycle_is_one_info_deferral_and_the_job_resumes_once(
    sandbox_company, monkeypatch, method, path, occurrence
):
    state, remote, company = sandbox_company
    job_id = state.create_job(remote.id, items=3, notify=False)["id"]
    retry_at = clock.now() + timedelta(seconds=30)
    refused = refuse(monkeypatch, method, path, occurrence, retry_at)

    first = company_check_run(company=company, trigger=Trigger.SCHEDULE)

    assert refused, "the budget was never asked for the call under test"
    assert first.outcome == Outcome.DEFERRED, first.error
    assert str(first.job_id) == job_id
    assert first.not_before == retry_at
    entries = AuditEntry.objects.filter(run_id=first.run_id)
    assert "started" in entries.values_list("step", flat=True)
    assert not entries.filter(outcome=AuditEntry.Outcome.ERROR).exists()
    assert not entries.filter(step="paused").exists()
    deferred = list(entries.filter(step="deferred"))
    assert len(deferred) == 1
    assert deferred[0].outcome == AuditEntry.Outcome.INFO
    assert f"{retry_at.astimezone(UTC):%H:%M:%S} UTC" in deferred[0].message
    assert deferred[0].export_job == ExportJob.objects.get(pleo_job_id=job_id)
    assert entries.order_by("id").last() == deferred[0]  # the run's last word
    company.refresh_from_db()
    assert company.lease_token is None
    assert (company.last_check_outcome, company.work_pending) == (Outcome.DEFERRED, True)
    assert company.next_run_not_before == retry_at
    assert state.get_job(job_id)["job"]["status"] == "in_progress"

    # The sweep picks the company up when the budget has room again, not before.
    queued = []
    monkeypatch.setattr(
        "exports.services.sweep.company_check_enqueue",
        lambda **kw: queued.append(kw["company_id"]) or True,
    )
    assert leases_sweep_stale() == 0
    clock.advance((retry_at - clock.now()).total_seconds() + 1)
    assert leases_sweep_stale() == 1 and queued == [company.pk]

    again = company_check_run(
        company=Company.objects.get(pk=company.pk), trigger=Trigger.RECOVERY, recover=True
    )
    assert again.outcome == Outcome.COMPLETED, again.error
    assert state.get_job(job_id)["job"]["status"] == "completed"
    assert len(refused) == 1  # refused once, then never again

    # Nothing lost, nothing done twice.
    entry_ids = {item["accountingEntryId"] for item in state.get_job(job_id)["items"]}
    assert JournalEntry.objects.count() == 3
    booked = Counter(str(entry.accounting_entry_id) for entry in JournalEntry.objects.all())
    assert booked == Counter(dict.fromkeys(entry_ids, 1))
    reported = Counter(
        update["accountingEntryId"]
        for put in state.requests("PUT", f"/v3/export-jobs/{job_id}/items")
        for update in put["body"]
    )
    assert reported == Counter(dict.fromkeys(entry_ids, 1))
    events = Counter(
        post["body"]["event"]
        for post in state.requests("POST", EVENTS)
        if post["body"]["jobId"] == job_id
    )
    assert events == Counter({"started": 1, "completed": 1})
    assert not AuditEntry.objects.filter(company=company, outcome=AuditEntry.Outcome.ERROR).exists()
    company.refresh_from_db()
    assert (company.work_pending, company.next_run_not_before) == (False, None)
