"""The product's request budget against a real rate limit: the sandbox's ``rate_limit_per_minute``
(a sandbox variant switch), not only injected 429 faults.

One workload, three companies on one API key (an organisation's key: one budget, one limit),
each with a pending job, run by ``check_exports``; unbudgeted it sends ~24 requests in under a
second. The sandbox allows 12 requests per window, the window (Pleo's minute) shortened so the
tests stay fast:

* the budget at the limit (12 per window, burst 6): the sandbox never answers 429 although the
  workload, unbudgeted, exceeds the limit; the budget defers, and later runs (as the sweep would,
  once the budget has room again) finish every job;
* the budget over the limit (30 per window): the sandbox answers 429 with ``Retry-After``; the
  client waits at least that long before sending the same request again, and every job still
  completes in one ``check_exports``.

The first scenario waits for the budget to refill between runs (~3 s): it runs with
``--run-slow``; the second (~1.5 s) in every run.
"""

from __future__ import annotations

import io
import time
import uuid

import pytest
from django.core.management import call_command

from exports.services import budget
from tests.factories import make_company, make_credential

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_budget")]

SANDBOX_LIMIT = 12
COMPANIES = 3


@pytest.fixture
def workload(pleo_sandbox, settings):
    """Returns a function of the window (seconds: the sandbox's and the budget's "minute")."""

    def make(window: float):
        settings.PLEO_RATE_LIMIT_BACKEND = "database"
        settings.PLEO_RATE_LIMIT_WINDOW_SECONDS = window
        state = pleo_sandbox.state
        state.set_switches(rate_limit_per_minute=SANDBOX_LIMIT, rate_limit_window_seconds=window)
        remotes = [state.add_company(f"Limited {i}") for i in range(COMPANIES)]
        key = state.add_api_key(company_ids=[r.id for r in remotes])
        credential = make_credential(api_key=key.key, api_base_url=pleo_sandbox.url)
        for remote in remotes:
            make_company(
                name=remote.name, pleo_company_id=uuid.UUID(remote.id), credential=credential
            )
            state.create_job(remote.id, 1, notify=False)
        return state

    return make


def max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def job_statuses(state) -> list[str]:
    return [job["status"] for job in state.list_jobs()]


def api_requests(state) -> list[dict]:
    """The sandbox's log without receipt downloads (``/files/``): pre-signed file URLs are no
    API requests, neither in our request budget nor in the sandbox's limit."""
    return [e for e in state.requests() if not e["path"].startswith("/files/")]


@pytest.mark.slow  # ~3 s, mostly waiting for the budget to refill between runs
def test_budget_under_the_limit_never_meets_a_429(workload, settings):
    window = 0.5  # unbudgeted, the workload sends more than the limit in it (see the next test)
    state = workload(window)
    settings.PLEO_RATE_LIMIT_PER_MINUTE = SANDBOX_LIMIT  # per window: never more than Pleo allows
    settings.PLEO_RATE_LIMIT_BURST = SANDBOX_LIMIT // 2  # a resumed job's reads fit in one burst
    refill = budget.budget_rate().burst * budget.budget_rate().interval
    runs = []
    while len(runs) < 10:
        out = io.StringIO()
        call_command("check_exports", "--wait", "0", stdout=out)
        runs.append(out.getvalue())
        if "deferred" not in runs[-1]:
            break
        time.sleep(refill)  # as the sweep would pick it up again, with room in the budget
    log = api_requests(state)
    assert [e for e in log if e["status"] == 429] == []
    assert job_statuses(state) == ["completed"] * COMPANIES, runs
    assert len(runs) > 1  # the budget did defer: it was the binding limit, not the sandbox's
    assert len(log) > SANDBOX_LIMIT * 1.5
    assert max_in_any_window([e["startedMonotonic"] for e in log], window) <= SANDBOX_LIMIT


def test_budget_over_the_limit_meets_429s_and_honours_retry_after(workload, settings):
    window = 1.0  # the workload sends about twice the sandbox's limit in it
    state = workload(window)
    settings.PLEO_RATE_LIMIT_PER_MINUTE = 30  # per window: more than the sandbox allows
    out = io.StringIO()
    call_command("check_exports", "--wait", "0", stdout=out)
    assert job_statuses(state) == ["completed"] * COMPANIES, out.getvalue()
    log = api_requests(state)
    refused = [e for e in log if e["status"] == 429]
    assert refused, "the workload should have met the sandbox's limit"
    for entry in refused:
        retry_after = float(entry["responseHeaders"]["Retry-After"])
        assert retry_after >= 1
        again = next(
            e
            for e in log
            if e["id"] > entry["id"]
            and (e["method"], e["path"], e["query"])
            == (entry["method"], entry["path"], entry["query"])
        )
        # The same request again, no sooner than Retry-After after the 429 was sent.
        assert again["startedMonotonic"] - entry["endedMonotonic"] >= retry_after - 0.01
    # No request beyond the limit was served.
    served = [e["startedMonotonic"] for e in log if e["status"] != 429]
    assert max_in_any_window(served, window) <= SANDBOX_LIMIT
