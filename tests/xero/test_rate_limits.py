"""Xero's own 429s, each ``X-Rate-Limit-Problem`` the local Xero sends (``minute``, ``appminute``,
``concurrent``, ``day``: ``xero_sandbox/limits.py``), met for real: the limit is spent by calls
our budgets never saw (another process or organisation of the same app, straight to the local
Xero), not by an injected fault (those are in ``test_booking.py``).

What is checked: a spent minute (the organisation's or the app's) is waited for inside the run,
its ``Retry-After``, the lease renewed, up to ``XERO_BUDGET_WAIT_SECONDS`` (90 s; the wait moves
the local Xero's clock instead of sleeping: ``VirtualWaits``); a longer wait (past the 5 s of
``bx``), or the day, pauses the job (never fails it) until a later run; ``concurrent`` is retried
after its ``Retry-After`` (1 s, slept).
"""

from __future__ import annotations

import threading
from datetime import datetime

import pytest
import requests

from exports.models import AuditEntry, ExportJob
from exports.services.leases import Lease
from exports.services.start_flow import Outcome
from tests.test_lifecycle import env  # noqa: F401 - the lifecycle tests' sandbox company
from tests.xero.test_booking import bx  # noqa: F401 - that company connected to the local Xero

pytestmark = pytest.mark.django_db

OTHER_ORGANISATION = "Demo Company (UK)"  # connected to the same app (``xero_sandbox``)


def spend(bx, problem: str, tenant=None) -> int:  # noqa: F811
    """Calls to the local Xero with the app's token (not through our budgets) until it answers
    429 for ``problem``; returns that answer's ``Retry-After``."""
    headers = bx.xero.headers(tenant or bx.tenant)
    for _ in range(20_000):
        answer = requests.get(f"{bx.xero.api_url}/Organisation", headers=headers, timeout=5)
        if answer.status_code == 429:
            assert answer.headers["X-Rate-Limit-Problem"] == problem
            return int(answer.headers["Retry-After"])
    raise AssertionError(f"the {problem} limit was never reached")


def refusals(bx, problem: str) -> list[dict]:  # noqa: F811
    """The local Xero's 429s for ``problem`` answered to the product (its calls carry an
    ``X-Request-Id``; the test's own calls none)."""
    return [
        entry
        for entry in bx.xero.state.requests()
        if entry["status"] == 429
        and entry["requestId"]
        and entry["responseHeaders"]["X-Rate-Limit-Problem"] == problem
    ]


def next_attempt(bx, refused: dict) -> dict:  # noqa: F811
    """The next attempt of a refused call (the same client, method and path)."""
    return min(
        (
            entry
            for entry in bx.xero.state.requests(refused["method"], refused["path"])
            if entry["requestId"] == refused["requestId"]
            and entry["startedMonotonic"] > refused["startedMonotonic"]
        ),
        key=lambda entry: entry["startedMonotonic"],
    )


def xero_seconds(entry: dict) -> float:
    """When the local Xero received ``entry``, on its own clock."""
    return datetime.fromisoformat(entry["sandboxTime"].replace("Z", "+00:00")).timestamp()


@pytest.fixture
def heartbeats(monkeypatch):
    """The run's lease renewals asked for (``Lease.renew_if_due``: the adapter's heartbeat)."""
    calls = []
    renew_if_due = Lease.renew_if_due

    def counted(self):
        calls.append(self.company_id)
        return renew_if_due(self)

    monkeypatch.setattr(Lease, "renew_if_due", counted)
    return calls


@pytest.mark.parametrize("problem", ["minute", "appminute"])
def test_a_minute_spent_elsewhere_is_waited_for_inside_the_run_the_lease_renewed(
    bx,  # noqa: F811
    problem,
    heartbeats,
    monkeypatch,
    settings,
):
    settings.XERO_BUDGET_WAIT_SECONDS = 90  # the default
    waits = bx.waits.install(monkeypatch)
    job_id = bx.job({"normal": 2})
    if problem == "appminute":  # another organisation of the app spent the app's minute
        bx.xero.state.set_switches(app_minute_limit=40)
        spend(bx, problem, bx.xero.state.tenant_by_name(OTHER_ORGANISATION))
    else:
        spend(bx, problem)
    bx.xero.state.advance_clock(15)  # Retry-After 45 s: past the client's usual 30 s cap
    result = bx.run()
    assert result.outcome == Outcome.COMPLETED
    assert {i["status"] for i in bx.env.items(job_id).values()} == {"successful"}
    (refused,) = refusals(bx, problem)
    retry_after = int(refused["responseHeaders"]["Retry-After"])
    assert 30 < retry_after <= 90
    # Waited inside the run (its Retry-After, on Xero's clock), then the same call again.
    assert xero_seconds(next_attempt(bx, refused)) - xero_seconds(refused) >= retry_after
    assert retry_after <= sum(waits.waits) < retry_after + 5  # not a whole minute more
    assert len(heartbeats) >= retry_after // 5  # the lease renewed at least every 5 s
    assert not AuditEntry.objects.filter(step__in=("paused", "deferred")).exists()


def test_a_minute_longer_than_the_wait_allowance_pauses_the_job_never_fails_it(bx):  # noqa: F811
    job_id = bx.job({"normal": 2})
    spend(bx, "minute")
    bx.xero.state.advance_clock(20)  # Retry-After 40 s: more than XERO_BUDGET_WAIT_SECONDS
    result = bx.run()
    assert result.outcome == Outcome.STARTED
    assert bx.env.pleo(job_id)["job"]["status"] == "in_progress"
    assert {i["status"] for i in bx.env.items(job_id).values()} == {"pending"}
    assert "Rate limit exceeded: minute" in AuditEntry.objects.get(step="paused").message
    assert len(refusals(bx, "minute")) == 1  # not retried: no 40 s wait here
    assert not AuditEntry.objects.filter(step="validation_failed").exists()

    bx.xero.state.advance_clock(60)  # the next run, a minute later
    assert bx.run().outcome == Outcome.COMPLETED
    assert len(bx.documents()) == 2


def test_the_day_spent_pauses_the_job_until_a_later_run(bx):  # noqa: F811
    job_id = bx.job({"normal": 2})
    used = 5000 - int(bx.xero.state.requests()[-1]["responseHeaders"]["X-DayLimit-Remaining"])
    bx.xero.state.set_switches(day_limit=used)  # the organisation's day spent
    result = bx.run()
    assert result.outcome == Outcome.STARTED
    (refused,) = refusals(bx, "day")  # never retried
    assert {i["status"] for i in bx.env.items(job_id).values()} == {"pending"}
    assert "Rate limit exceeded: day" in AuditEntry.objects.get(step="paused").message
    assert ExportJob.objects.get(pleo_job_id=job_id).status == ExportJob.Status.IN_PROGRESS

    bx.xero.state.advance_clock(24 * 3600)  # tomorrow
    assert bx.run().outcome == Outcome.COMPLETED
    assert len(bx.documents()) == 2


def test_xeros_concurrent_limit_is_retried_after_its_retry_after(bx):  # noqa: F811
    job_id = bx.job({"normal": 2})
    # Five calls of another process hold the organisation's five slots for 1.5 s.
    held = bx.xero.state.add_fault(
        "latency", "GET", path_regex=r".*/Accounts", seconds=1.5, count=5
    )
    url, headers = f"{bx.xero.api_url}/Accounts", bx.xero.headers(bx.tenant)
    others = [
        threading.Thread(
            target=requests.get, args=(url,), kwargs={"headers": headers, "timeout": 5}
        )
        for _ in range(5)
    ]
    for thread in others:
        thread.start()
    bx.xero.state.request_log.wait_for(
        lambda log: sum(e["path"].endswith("/Accounts") and not e["complete"] for e in log) == 5
    )
    try:
        result = bx.run()
    finally:
        for thread in others:
            thread.join()
    assert held.hits == 5
    assert result.outcome == Outcome.COMPLETED
    assert {i["status"] for i in bx.env.items(job_id).values()} == {"successful"}
    refused = refusals(bx, "concurrent")
    assert refused
    for entry in refused:
        assert entry["responseHeaders"]["Retry-After"] == "1"
        assert next_attempt(bx, entry)["startedMonotonic"] - entry["endedMonotonic"] >= 1
