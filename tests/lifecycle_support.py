"""The lifecycle tests' sandbox company and what they read back, shared by the lifecycle test
modules (``tests/test_lifecycle*.py``) and the tests that carry jobs the same way (receipts,
reconciliation, preview, Pleo's tolerance, Xero booking).

``env`` is a fixture: a company of the Pleo sandbox with its API key, the journal adapter and
fast retries. Import it into a test module to use it there.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import requests

from exports import clock
from exports.adapters import ADAPTERS
from exports.adapters.journal import JournalAdapter
from exports.models import AuditEntry, Company, Trigger
from exports.services.start_flow import company_check_run
from tests.factories import make_sandbox_company_and_key

PUBLIC = "https://bridge.example"
EVENTS = "/v3/export-job-events"
FINAL_EVENTS = {"completed", "completed_with_errors", "failed"}


@dataclass
class Env:
    sandbox: object
    state: object
    remote: object
    key: object
    company: Company

    def job(self, items, **kw) -> str:
        return self.state.create_job(self.remote.id, items, notify=False, **kw)["id"]

    def run(self, trigger=Trigger.SCHEDULE, **kw):
        company = Company.objects.get(pk=self.company.pk)
        return company_check_run(company=company, trigger=trigger, **kw)

    def pleo(self, job_id) -> dict:
        return self.state.get_job(job_id)

    def items(self, job_id) -> dict[str, dict]:
        return {item["accountingEntryId"]: item for item in self.pleo(job_id)["items"]}

    def puts(self, job_id) -> list[dict]:
        return self.state.requests("PUT", f"/v3/export-jobs/{job_id}/items")

    def put_ids(self, job_id, *, statuses=(200, None)) -> list[str]:
        """Accounting entry ids in every PUT answered (or dropped) — 413s were not applied."""
        return [
            update["accountingEntryId"]
            for entry in self.puts(job_id)
            if entry["status"] in statuses
            for update in entry["body"]
        ]

    def final_events(self, job_id) -> list[dict]:
        return [
            e
            for e in self.state.requests("POST", EVENTS)
            if e["body"]["jobId"] == job_id and e["body"]["event"] in FINAL_EVENTS
        ]

    def put_items_directly(self, job_id, updates) -> None:
        url = f"{self.sandbox.url}/v3/export-jobs/{job_id}/items"
        response = requests.put(url, json=updates, headers=self.key.auth_header(), timeout=5)
        assert response.status_code == 200, response.text

    def use_adapter(self, name) -> None:
        Company.objects.filter(pk=self.company.pk).update(accounting_adapter=name)


@pytest.fixture
def env(pleo_sandbox, settings):
    settings.PUBLIC_BASE_URL = PUBLIC
    settings.PLEO_MAX_ATTEMPTS = 2
    settings.PLEO_BACKOFF_BASE = 0
    settings.PLEO_BACKOFF_MAX = 0
    settings.PLEO_ITEMS_BATCH_SIZE = 100
    remote, key, company = make_sandbox_company_and_key(pleo_sandbox, remote_name="Sandbox Acme")
    return Env(pleo_sandbox, pleo_sandbox.state, remote, key, company)


def steps(env) -> list[str]:
    return list(
        AuditEntry.objects.filter(company=env.company)
        .order_by("created_at", "id")
        .values_list("step", flat=True)
    )


def audit(env, step) -> AuditEntry:
    return AuditEntry.objects.filter(company=env.company, step=step).order_by("id").last()


def assert_balanced(entries) -> None:
    for entry in entries:
        lines = list(entry.lines.all())
        assert sum(line.debit for line in lines) == sum(line.credit for line in lines)
        assert sum(line.credit for line in lines) == abs(entry.amount)


class SlowJournal(JournalAdapter):
    """The journal, but every booking takes ``seconds`` on both clocks."""

    name = "slow-journal"
    sandbox_state = None
    seconds = 0
    product_clock_too = True

    def book(self, request):
        type(self).sandbox_state.advance_clock(self.seconds)
        if self.product_clock_too:
            clock.advance(self.seconds)
        return super().book(request)


def slow_bookings(monkeypatch, state, seconds, *, product_clock_too=True) -> str:
    """Every booking of :class:`SlowJournal` takes ``seconds`` on ``state``'s clock (and the
    product's); returns the adapter's name, for ``Company.accounting_adapter``."""
    monkeypatch.setitem(ADAPTERS, SlowJournal.name, SlowJournal)
    monkeypatch.setattr(SlowJournal, "sandbox_state", state)
    monkeypatch.setattr(SlowJournal, "seconds", seconds)
    monkeypatch.setattr(SlowJournal, "product_clock_too", product_clock_too)
    return SlowJournal.name
