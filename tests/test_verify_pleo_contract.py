"""``manage.py verify_pleo_contract`` against the sandbox, with each of the sandbox's variant
switches, and
the pure checks behind it (exports/pleo/contract.py) on hand-made answers."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from exports.models import Credential
from exports.pleo import BudgetExhausted, contract
from exports.services import budget
from exports.services.subscriptions import webhooks_subscribe
from pleo_sandbox.variants import JOB_CREATED_SPELLINGS
from tests.factories import make_sandbox_company

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_budget")]


@pytest.fixture
def acme(pleo_sandbox):
    """A company with a pending job (with receipts) and a finished one, subscribed to webhooks."""
    state = pleo_sandbox.state
    remote, company = make_sandbox_company(pleo_sandbox, name="Contract Acme")
    done = state.create_job(remote.id, 1, notify=False)
    state.set_job_status(done["id"], "completed")
    state.create_job(remote.id, {"normal": 4, "foreign": 2, "refund": 1}, notify=False)
    webhooks_subscribe(credential=company.credential)
    state.clear_requests()
    return state, remote, company


def verify(remote_id: str, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_pleo_contract", "--company", remote_id, *extra, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()


def findings(remote_id: str) -> tuple[int, dict[str, dict]]:
    code, out = verify(remote_id, "--json")
    report = json.loads(out)
    return code, {f["check"]: f for f in report["findings"]} | {"_report": report}


def only_gets(state) -> list[str]:
    return sorted({e["method"] for e in state.requests()})


def test_everything_matches_against_the_default_sandbox(acme):
    state, remote, company = acme
    code, out = verify(remote.id)
    assert code == 0, out
    assert "MISMATCH" not in out
    for check in (
        "jobs.schema",
        "jobs.status_enum",
        "jobs.statuses_filter",
        "job.schema",
        "items.schema",
        "items.status_enum",
        "export_items.schema",
        "export_items.receipt_hosts",
        "errors.not_found",
        "subscriptions.event_types_shape",
        "subscriptions.event_type_spelling",
        "pagination",
    ):
        assert f"match     {check}" in out, (check, out)
    assert "receipt files served from 127.0.0.1" in out
    assert "requests (GET)." in out
    # Read-only, and cheap: a handful of GETs, never a secret asked for.
    assert only_gets(state) == ["GET"]
    paths = [e["path"] for e in state.requests()]
    assert len(paths) <= 8 and not any(p.endswith("/secret") for p in paths)
    assert company.credential.api_key not in out


def test_json_output(acme):
    state, remote, company = acme
    code, checks = findings(remote.id)
    report = checks["_report"]
    assert code == 0 and report["ok"] is True
    assert report["methods"] == ["GET"] and report["requests"] == len(state.requests())
    assert report["pleo_company_id"] == remote.id
    assert report["counts"]["mismatch"] == 0
    assert checks["errors.not_found"]["status"] == "match"


def test_expired_status_is_flagged_as_not_in_the_v3_enum(acme):
    state, remote, company = acme
    state.set_switches(expired_status=True)
    state.advance_clock(3601)  # the pending job expires: status "expired"
    code, checks = findings(remote.id)
    assert code == 1
    finding = checks["jobs.status_enum"]
    assert finding["status"] == "mismatch"
    assert "'expired'" in finding["detail"] and "ExportJobStatus" in finding["detail"]
    assert only_gets(state) == ["GET"]


def test_expired_status_off_matches(acme):
    state, remote, company = acme
    state.advance_clock(3601)  # failed + job_expired, as the v3 enum allows
    code, checks = findings(remote.id)
    assert code == 0, checks
    assert "job_expired" in checks["jobs.failure_reason_type_enum"]["detail"]
    # No unfinished job left: export items cannot be read, their 422 is checked instead.
    assert checks["export_items.schema"]["status"] == "skipped"
    assert checks["export_items.finished_job_error"]["status"] == "match"


def test_lower_case_error_types_are_flagged(acme):
    state, remote, company = acme
    state.set_switches(error_type_case="lower")
    code, checks = findings(remote.id)
    assert code == 1
    finding = checks["errors.not_found"]
    assert finding["status"] == "mismatch"
    assert "'export_not_found'" in finding["detail"] and "'EXPORT_NOT_FOUND'" in finding["detail"]
    # With only finished jobs, the 422 of export items shows the case too.
    state.advance_clock(3601)
    code, checks = findings(remote.id)
    assert code == 1
    assert (
        "'export_job_status_unprocessable'" in checks["export_items.finished_job_error"]["detail"]
    )


@pytest.mark.parametrize("spelling", JOB_CREATED_SPELLINGS)
def test_event_type_spelling_of_subscriptions(acme, spelling):
    state, remote, company = acme
    state.set_switches(event_type_spelling=spelling)
    code, checks = findings(remote.id)
    finding = checks["subscriptions.event_type_spelling"]
    if spelling == "v1.export-job.created":  # what we subscribe with
        assert (code, finding["status"]) == (0, "match")
    else:
        assert (code, finding["status"]) == (1, "mismatch")
        assert repr(spelling) in finding["detail"]
    assert checks["subscriptions.event_types_shape"]["status"] == "match"


@pytest.mark.parametrize(
    "switches",
    [
        {"conflict_on_create": False},
        {"put_refreshes_last_updated": False},
        {"strict_final_event": True},
    ],
    ids=lambda s: next(iter(s)),
)
def test_switches_a_read_only_check_cannot_see(acme, switches):
    """These only change what writes do: the check never writes, so it sees no difference."""
    state, remote, company = acme
    state.set_switches(**switches)
    code, out = verify(remote.id)
    assert code == 0, out
    assert only_gets(state) == ["GET"]


@pytest.mark.slow  # ~1.3 s: waits out a Retry-After of a second
def test_sandbox_rate_limit_is_waited_out(acme):
    state, remote, company = acme
    state.set_switches(rate_limit_per_minute=5, rate_limit_window_seconds=1)
    code, out = verify(remote.id)
    assert code == 0, out
    statuses = [e["status"] for e in state.requests()]
    assert 429 in statuses  # met, and retried after Retry-After
    assert only_gets(state) == ["GET"]


def test_a_spent_budget_stops_the_check(acme, settings):
    state, remote, company = acme
    settings.PLEO_RATE_LIMIT_PER_MINUTE = 4
    key = budget.budget_key_for(credential=company.credential)
    with pytest.raises(BudgetExhausted):
        for _ in range(5):
            budget.budget_consume(key=key)
    code, out = verify(remote.id)
    assert code == 1
    assert "STOPPED" in out and "budget" in out
    assert state.requests() == []


def test_refused_and_unusable_credentials(acme):
    state, remote, company = acme
    state.revoke(state.credentials()[0].id)
    code, out = verify(remote.id)
    assert code == 1 and "Pleo refused the credential" in out
    assert len(state.requests()) == 1  # nothing after the 401
    company.credential.refresh_from_db()
    assert company.credential.status == Credential.Status.INVALID
    state.clear_requests()
    code, out = verify(remote.id)
    assert code == 1 and "STOPPED" in out
    assert state.requests() == []


def test_a_company_without_jobs_or_subscriptions(pleo_sandbox):
    remote, company = make_sandbox_company(pleo_sandbox, name="Empty")
    code, checks = findings(remote.id)
    assert code == 0
    assert checks["job.schema"]["status"] == "skipped"
    assert checks["subscriptions.event_type_spelling"]["status"] == "skipped"
    assert checks["errors.not_found"]["status"] == "match"


@pytest.mark.parametrize(
    "value, message",
    [("not-a-uuid", "is not a UUID"), (str(uuid.uuid4()), "unknown company")],
    ids=["not-a-uuid", "unknown-company"],  # stable: pytest-xdist's workers collect the same ids
)
def test_usage_errors_exit_2(value, message):
    with pytest.raises(CommandError, match=message) as refused:
        call_command("verify_pleo_contract", "--company", value)
    assert refused.value.returncode == 2


def test_company_is_required():
    with pytest.raises(CommandError, match="--company"):
        call_command("verify_pleo_contract")


# --- The pure checks on hand-made answers -------------------------------------------------------

JOB = {"id": "j1", "status": "pending", "failureReasonType": None}


def test_enum_finding():
    ok = contract.enum_finding("c", [JOB], "status", "ExportJobStatus", what="job")
    assert ok.status == "match" and "pending ×1" in ok.detail
    odd = [JOB, {**JOB, "id": "j2", "status": "archived"}, {**JOB, "id": "j3", "status": None}]
    bad = contract.enum_finding("c", odd, "status", "ExportJobStatus", what="job")
    assert bad.status == "mismatch"
    assert "'archived' (1 job, e.g. j2)" in bad.detail and "None" in bad.detail
    nullable = contract.enum_finding(
        "c", [JOB], "failureReasonType", "ExportJobFailureReasonType", what="job", nullable=True
    )
    assert nullable.status == "skipped"


def page(has_next, cursor=None, **extra):
    info = {"hasNextPage": has_next, "hasPreviousPage": False, **extra}
    if cursor is not None:
        info["endCursor"] = cursor
    return {"data": [], "pagination": info}


def test_pagination_problems():
    assert contract.pagination_problems([page(True, "GE"), page(False)]) == []
    assert contract.pagination_problems([page(True)]) == [
        "page 1: hasNextPage without an endCursor"
    ]
    assert contract.pagination_problems([page(True, "abc")]) == [
        "page 1: endCursor does not match ^[A-Z2-7=~]+$"
    ]
    assert contract.pagination_problems([page(True, "GE"), page(True, "GE")]) == [
        "page 2: endCursor repeats an earlier page's"
    ]
    assert contract.pagination_problems([{"data": []}, page("yes")]) == [
        "page 1: no pagination object",
        "page 2: hasNextPage is not a boolean",
    ]


def test_error_type_finding():
    def check(status, error_type):
        return contract.error_type_finding(
            "c",
            status=status,
            error_type=error_type,
            expected_status=404,
            expected="EXPORT_NOT_FOUND",
        )

    assert check(404, "EXPORT_NOT_FOUND").status == "match"
    assert "another case" in check(404, "export_not_found").detail
    assert check(404, "export_not_found").status == "mismatch"
    assert check(404, None).status == "mismatch"
    assert check(400, "EXPORT_NOT_FOUND").status == "mismatch"
    assert "documented" in check(404, "NOT_FOUND").detail


def test_event_types_findings():
    def run(*subs):
        found = contract.event_types_findings(
            list(subs), subscribe_with="v1.export-job.created", accepted=JOB_CREATED_SPELLINGS
        )
        return {f.check.split(".")[1]: f for f in found}

    ours = {"id": "s1", "eventTypes": ["v1.export-job.created"]}
    assert {f.status for f in run(ours).values()} == {"match"}
    as_string = run({"id": "s2", "eventTypes": "v1.export-job.created"})
    assert as_string["event_types_shape"].status == "mismatch"
    assert "a string" in as_string["event_types_shape"].detail
    assert as_string["event_type_spelling"].status == "match"
    vendor_only = run({"id": "s3", "eventTypes": ["v1.vendor.created"]})
    assert vendor_only["event_type_spelling"].status == "skipped"
    assert {f.status for f in run().values()} == {"skipped"}


def test_receipt_hosts_finding():
    def run(*urls, base="https://external.pleo.io"):
        items = [{"files": [{"url": u} for u in urls]}]
        return contract.receipt_hosts_finding("c", items, api_base_url=base)

    assert run("https://external.pleo.io/f/1", "https://files.pleo.io/r/2").status == "match"
    assert run("http://127.0.0.1:8765/files/x", base="http://127.0.0.1:8765").status == "match"
    assert "not https" in run("http://files.pleo.io/r/2").detail
    assert "neither" in run("https://s3.amazonaws.com/bucket/r").detail
    assert "not an absolute URL" in run("/files/x").detail
    assert run().status == "skipped"


def test_a_failing_call_is_a_mismatch_and_the_rest_still_runs(acme, settings):
    state, remote, company = acme
    settings.PLEO_MAX_ATTEMPTS = 1
    state.add_fault("status", "GET", "/v3/export-jobs", status=500, count=1)
    code, checks = findings(remote.id)
    assert code == 1
    assert checks["jobs.schema"]["status"] == "mismatch"
    assert "the call failed" in checks["jobs.schema"]["detail"]
    assert checks["job.schema"]["detail"] == "the job list failed"
    assert checks["errors.not_found"]["status"] == "match"
    assert checks["subscriptions.schema"]["status"] == "match"
