"""Xero's limits: per tenant 60 a minute, 5,000 a day, 5 in flight; 10,000 a minute per app; the
remaining counts on every answer; 429 with ``Retry-After`` and ``X-Rate-Limit-Problem``.
Windows run on the sandbox clock: tests move it instead of waiting."""

from __future__ import annotations

import threading

import requests

URL = "/Organisation"


def get(sandbox, tenant=None):
    return requests.get(sandbox.api_url + URL, headers=sandbox.headers(tenant=tenant), timeout=5)


def test_remaining_counts_on_every_answer_and_the_minute_window(xero_sandbox):
    first = get(xero_sandbox)
    assert first.headers["X-MinLimit-Remaining"] == "59"
    assert first.headers["X-DayLimit-Remaining"] == "4999"
    assert first.headers["X-AppMinLimit-Remaining"] == "9999"
    for _ in range(59):
        last = get(xero_sandbox)
    assert last.status_code == 200 and last.headers["X-MinLimit-Remaining"] == "0"
    refused = get(xero_sandbox)
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "minute"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Another tenant of the same app has its own minute.
    assert get(xero_sandbox, tenant=xero_sandbox.state.tenants()[1]).status_code == 200
    xero_sandbox.state.advance_clock(60)
    again = get(xero_sandbox)
    assert again.status_code == 200 and again.headers["X-DayLimit-Remaining"] == "4939"


def test_day_and_app_minute_limits(xero_sandbox):
    state = xero_sandbox.state
    state.set_switches(day_limit=3, minute_limit=100, access_token_lifetime=3 * 24 * 3600)
    xero_sandbox.tokens = state.oauth_issue_tokens(
        xero_sandbox.client, tenant_ids=[t.id for t in state.tenants()]
    )
    for _ in range(3):
        assert get(xero_sandbox).status_code == 200
    refused = get(xero_sandbox)
    assert refused.status_code == 429 and refused.headers["X-Rate-Limit-Problem"] == "day"
    assert int(refused.headers["Retry-After"]) > 23 * 3600
    state.advance_clock(24 * 3600)
    assert get(xero_sandbox).status_code == 200
    state.set_switches(app_minute_limit=1)
    state.advance_clock(60)
    assert get(xero_sandbox).status_code == 200
    app = get(xero_sandbox, tenant=state.tenants()[2])
    assert app.status_code == 429 and app.headers["X-Rate-Limit-Problem"] == "appminute"


def test_at_most_five_calls_in_flight_per_tenant(xero_sandbox):
    state = xero_sandbox.state
    state.add_fault("latency", "GET", "/api.xro/2.0/Organisation", count=5, seconds=0.5)
    answers, threads = [], []

    def call():
        answers.append(get(xero_sandbox))

    for _ in range(5):
        threads.append(threading.Thread(target=call))
        threads[-1].start()
    state.request_log.wait_for(lambda entries: len(entries) >= 5, timeout=5)
    sixth = get(xero_sandbox)
    for thread in threads:
        thread.join(5)
    assert sixth.status_code == 429
    assert sixth.headers["X-Rate-Limit-Problem"] == "concurrent"
    assert sixth.headers["Retry-After"] == "1"
    assert sorted(a.status_code for a in answers) == [200] * 5
    assert get(xero_sandbox).status_code == 200  # the slots are given back
