"""Scenario 6 (Pleo side): malformed Pleo responses give a clear audited error and no crash loop.

The sandbox answers with a body Pleo should never send (missing fields, wrong types, an HTML error
page, truncated JSON), on the job list, on the job itself, on the job's
items and on the export items, and keeps doing so. The company is checked again and again, as
the sweep and the schedule would: every run ends cleanly (no exception escapes), the first run
audits one clear error naming what was wrong, and the same failure on the following runs is not
audited again. Once Pleo answers properly again, the job is carried to its end.

(Hypothesis-generated and hand-made bad *webhook* requests are in ``tests/test_webhook_fuzz.py``
and ``tests/test_webhook_rejections.py``.)
"""

from __future__ import annotations

import json

import pytest

from exports.models import AuditEntry, Company, Trigger
from exports.services.start_flow import Outcome, company_check_run
from tests.reliability import support
from tests.reliability.profile import record

pytestmark = pytest.mark.django_db

RUNS = 4
PAGE = {
    "currentRequestPagination": {"parameters": {}},
    "hasNextPage": False,
    "hasPreviousPage": False,
}
HTML = "<html><head><title>Bad gateway</title></head><body>oops</body></html>"


def _without(obj: dict, key: str) -> dict:
    return {k: v for k, v in obj.items() if k != key}


# Each broken body, per call: (path, is it a page of a list, the good object -> the broken one,
# words the audited error must contain). The good object is the sandbox's own answer.
MUTATIONS = {
    "missing_field": {
        "job_list": (lambda job: _without(job, "status"), "status: missing required field"),
        "job": (lambda job: _without(job, "createdAt"), "createdAt: missing required field"),
        "job_items": (lambda item: _without(item, "status"), "status: missing required field"),
        "export_items": (lambda item: _without(item, "date"), "date: missing required field"),
    },
    "wrong_type": {
        "job_list": (lambda job: {**job, "expiresIn": "3600"}, "expected an integer, got string"),
        "job": (lambda job: {**job, "isInteractive": "yes"}, "expected a boolean, got string"),
        "job_items": (
            lambda item: {**item, "accountingEntryId": 12345},
            "expected a string, got integer",
        ),
        "export_items": (
            lambda item: {**item, "companyId": ["x"]},
            "expected a string, got array",
        ),
    },
    # An unknown enum value (a job or item status, a failure type) is no malformed response: it
    # reads as UNKNOWN and keeps the raw string (tests/test_unknown_job_status.py).
    "html_page": {
        where: (lambda _obj: HTML, "an HTML page instead of JSON")
        for where in ("job_list", "job", "job_items", "export_items")
    },
    "truncated_json": {
        where: (lambda obj: json.dumps({"data": [obj]})[:40], "invalid JSON")
        for where in ("job_list", "job", "job_items", "export_items")
    },
}
CASES = [(kind, where) for kind, calls in MUTATIONS.items() for where in calls]


@pytest.fixture
def company(pleo_sandbox, settings):
    settings.PLEO_MAX_ATTEMPTS = 2
    settings.PLEO_BACKOFF_BASE = 0
    settings.PLEO_BACKOFF_MAX = 0
    seeded = support.seed_companies(pleo_sandbox, 1, prefix="Malformed")
    return seeded


def _runs(company: Company, n: int = RUNS):
    return [
        company_check_run(company=Company.objects.get(pk=company.pk), trigger=Trigger.SCHEDULE)
        for _ in range(n)
    ]


def _errors(company: Company):
    return list(
        AuditEntry.objects.filter(company=company, outcome=AuditEntry.Outcome.ERROR).order_by("id")
    )


@pytest.mark.parametrize(("kind", "where"), CASES)
def test_malformed_response_is_audited_once_and_never_loops(kind, where, company):
    seeded = company
    remote, ours = seeded.companies[0]
    state = seeded.state
    job_id = seeded.add_job(remote.id, items=2)
    good = {
        "job_list": state.get_job(job_id)["job"],
        "job": state.get_job(job_id)["job"],
        "job_items": _without(state.get_job(job_id)["items"][0], "kind"),
        "export_items": state.export_items(job_id)[0],
    }[where]
    path, listed = {
        "job_list": ("/v3/export-jobs", True),
        "job": (f"/v3/export-jobs/{job_id}", False),
        "job_items": (f"/v3/export-jobs/{job_id}/items", True),
        "export_items": ("/v3/export-items", True),
    }[where]
    breaker, expected = MUTATIONS[kind][where]
    broken = breaker(good)
    if isinstance(broken, str):
        body = broken
    else:
        body = {"data": [broken], "pagination": PAGE} if listed else {"data": broken}
    headers = {"Content-Type": "text/html"} if kind == "html_page" else None
    fault = state.add_fault(
        "status", "GET", path, status=200, body=body, headers=headers, count=None
    )

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
