"""Scenario 6 (Pleo side): malformed Pleo responses give a clear audited error and no crash loop.

The sandbox answers with a body Pleo should never send (missing fields, wrong types, unknown enum
values, an HTML error page, truncated JSON), on the job list, on the job itself, on the job's
items and on the export items, and keeps doing so. The company is checked again and again, as
the sweep and the schedule would: every run ends cleanly (no exception escapes), the first run
audits one clear error naming what was wrong, and the same failure on the following runs is not
audited again. Once Pleo answers properly again, the job is carried to its end.

(Hypothesis-generated and hand-made bad *webhook* requests are in ``tests/test_webhook_fuzz.py``
and ``tests/test_webhooks.py``.)
"""

from __future__ import annotations

import json

import pytest

from exports.models import AuditEntry, Company, Trigger
from exports.services.start_flow import Outcome, run_export_check
from tests.reliability import support
from tests.reliability.profile import record

pytestmark = pytest.mark.django_db

RUNS = 4
PAGE = {
    "currentRequestPagination": {"parameters": {}},
    "hasNextPage": False,
    "hasPreviousPage": False,
}


def _job(job: dict, **changes) -> dict:
    body = {**job, **changes}
    return {key: value for key, value in body.items() if value is not _MISSING}


_MISSING = object()

# name -> (how the body is broken, words the audited error must contain)
MALFORMED = {
    "missing_field": (lambda job: _job(job, status=_MISSING), "missing required field"),
    "wrong_type": (lambda job: _job(job, expiresIn="3600"), "expected an integer"),
    "unknown_enum": (lambda job: _job(job, status="archived"), "unknown value 'archived'"),
    "html_page": (
        lambda job: "<html><head><title>Bad gateway</title></head><body>oops</body></html>",
        "instead of JSON",
    ),
    "truncated_json": (lambda job: json.dumps({"data": job})[:40], "invalid JSON"),
}


@pytest.fixture
def company(pleo_sandbox, settings):
    settings.PLEO_MAX_ATTEMPTS = 2
    settings.PLEO_BACKOFF_BASE = 0
    settings.PLEO_BACKOFF_MAX = 0
    seeded = support.seed_companies(pleo_sandbox, 1, prefix="Malformed")
    return seeded


def _runs(company: Company, n: int = RUNS):
    return [
        run_export_check(company=Company.objects.get(pk=company.pk), trigger=Trigger.SCHEDULE)
        for _ in range(n)
    ]


def _errors(company: Company):
    return list(
        AuditEntry.objects.filter(company=company, outcome=AuditEntry.Outcome.ERROR).order_by("id")
    )


@pytest.mark.parametrize("kind", list(MALFORMED))
@pytest.mark.parametrize("where", ["job_list", "job", "job_items", "export_items"])
def test_malformed_response_is_audited_once_and_never_loops(kind, where, company):
    seeded = company
    remote, ours = seeded.companies[0]
    state = seeded.state
    job_id = seeded.add_job(remote.id, items=2)
    clean = state.get_job(job_id)["job"]
    item = {**state.get_job(job_id)["items"][0]}
    item.pop("kind")
    breaker, expected = MALFORMED[kind]
    if where == "job_list":
        broken = breaker(clean)
        body = broken if isinstance(broken, str) else {"data": [broken], "pagination": PAGE}
        path = "/v3/export-jobs"
    elif where == "job":
        broken = breaker(clean)
        body = broken if isinstance(broken, str) else {"data": broken}
        path = f"/v3/export-jobs/{job_id}"
    elif where == "job_items":
        broken = breaker(item)
        if isinstance(broken, dict) and kind == "wrong_type":
            broken = {**item, "accountingEntryId": 12345}
            expected = "expected a string"
        elif isinstance(broken, dict) and kind == "unknown_enum":
            broken = {**item, "status": "archived"}
        elif isinstance(broken, dict) and kind == "missing_field":
            broken = {k: v for k, v in item.items() if k != "status"}
        body = broken if isinstance(broken, str) else {"data": [broken], "pagination": PAGE}
        path = f"/v3/export-jobs/{job_id}/items"
    else:
        body = (
            breaker(clean)
            if kind in ("html_page", "truncated_json")
            else {"data": [{"accountingEntryId": item["accountingEntryId"]}], "pagination": PAGE}
        )
        if kind not in ("html_page", "truncated_json"):
            expected = "missing required field"
        path = "/v3/export-items"
    headers = {"Content-Type": "text/html"} if kind == "html_page" else None
    fault = state.add_fault("status", "GET", path, status=200, body=body, headers=headers, count=None)

    results = _runs(ours)
    errors = _errors(ours)
    record(
        f"bad_responses.{where}.{kind}",
        runs=len(results),
        outcomes=sorted({r.outcome for r in results}),
        error_audits=len(errors),
        error=errors[0].message if errors else "",
    )
    assert len(errors) == 1, [(e.step, e.message) for e in errors]
    assert expected in errors[0].message, errors[0].message
    assert "malformed response" in errors[0].message
    for result in results:
        assert result.outcome in (Outcome.FAILED, Outcome.STARTED, Outcome.RESUMED), result
    # Nothing was started twice; the job was not given up on.
    started = [e for e in state.get_job(job_id)["events"] if e["event"] == "started"]
    assert len([e for e in started if e["accepted"]]) <= 1

    state.remove_fault(fault.id)
    after = _runs(ours, 1)[0]
    assert after.outcome == Outcome.COMPLETED, after
    assert state.get_job(job_id)["job"]["status"] == "completed"
