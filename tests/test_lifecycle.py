"""The export lifecycle against the Pleo sandbox over real HTTP: start → validate → items →
export items → book → report → final event, with the sandbox's faults, clock and switches.

What Pleo received is read from the sandbox's own request log and job record. This module: the
happy paths, pre-export validation and the command line; the items, reporting, deadlines and the
final event each have a module of their own (``tests/test_lifecycle_*.py``), as the lifecycle's
parts do (``exports/services/lifecycle_*.py``). The shared fixture is in
``tests/lifecycle_support.py``.
"""

from __future__ import annotations

import json
import uuid

import pytest
from django.core.management import call_command

from exports.adapters import ADAPTERS, AccountingAdapter, ValidationResult
from exports.models import AuditEntry, Company, ExportItemRecord, ExportJob, JournalEntry
from exports.services import lifecycle, lifecycle_common
from exports.services.start_flow import Outcome
from tests import lifecycle_support
from tests.lifecycle_support import EVENTS, PUBLIC, assert_balanced, audit, steps

pytestmark = pytest.mark.django_db

env = lifecycle_support.env  # the sandbox company of the lifecycle tests (a fixture)


# --- the happy paths -------------------------------------------------------------------------


def test_all_items_succeed_and_the_job_completes(env):
    job_id = env.job({"normal": 3, "foreign": 1, "refund": 1})
    result = env.run()
    assert result.outcome == Outcome.COMPLETED
    pleo = env.pleo(job_id)
    assert pleo["job"]["status"] == "completed"
    entries = {e.accounting_entry_id: e for e in JournalEntry.objects.all()}
    assert len(entries) == 5
    assert_balanced(entries.values())
    for item in pleo["items"]:
        assert item["status"] == "successful"
        entry = entries[uuid.UUID(item["accountingEntryId"])]
        assert item["externalId"] == entry.number
        assert item["externalUrl"] == f"{PUBLIC}/admin/exports/journalentry/{entry.pk}/change/"
        assert item["exportedAt"] is not None
    assert [e["body"]["event"] for e in env.final_events(job_id)] == ["completed"]
    assert sorted(env.put_ids(job_id)) == sorted(
        item["accountingEntryId"] for item in pleo["items"]
    )
    job = ExportJob.objects.get(pleo_job_id=job_id)
    assert (job.status, job.processing_state) == ("completed", "done")
    assert set(job.item_records.values_list("state", flat=True)) == {"reported"}
    for record in job.item_records.all():  # each item as received, stored redacted at booking
        snapshot = record.item_snapshot
        assert snapshot["accountingEntryId"] == str(record.accounting_entry_id)
        assert (
            snapshot["amount"]["inWalletCurrency"]["value"]
            == entries[record.accounting_entry_id].amount
        )
        assert "user" not in snapshot and "user" in snapshot["_redacted"]
        assert not any("url" in file for file in snapshot["files"])
    assert steps(env) == [
        "selected",
        "started",
        "validated",
        "items_read",
        "export_items_read",
        "items_reported",
        "completed",
    ]
    put = audit(env, "items_reported")
    assert (put.http_method, put.http_path, put.http_status) == (
        "PUT",
        f"/v3/export-jobs/{job_id}/items",
        200,
    )
    assert (audit(env, "completed").http_method, audit(env, "completed").http_status) == (
        "POST",
        202,
    )
    company = Company.objects.get(pk=env.company.pk)
    assert (company.last_check_outcome, company.work_pending) == ("completed", False)


def test_some_items_fail_with_their_reasons_and_the_job_completes_with_errors(env):
    job_id = env.job({"normal": 2, "missing_account": 1, "missing_contra": 1})
    assert env.run().outcome == Outcome.COMPLETED_WITH_ERRORS
    pleo = env.pleo(job_id)
    assert pleo["job"]["status"] == "completed_with_errors"
    by_kind = {item["kind"]: item for item in pleo["items"]}
    assert by_kind["missing_account"]["status"] == "failed"
    assert by_kind["missing_account"]["failureReasonType"] == "account_unknown"
    assert "no expense account" in by_kind["missing_account"]["failureReason"]
    assert by_kind["missing_contra"]["failureReasonType"] == "missing_configuration"
    assert "contra account" in by_kind["missing_contra"]["failureReason"]
    assert by_kind["normal"]["status"] == "successful"
    assert JournalEntry.objects.count() == 2
    assert steps(env).count("item_failed") == 2
    # Refused items are kept as received too (the audit pack shows what was refused).
    refused = ExportItemRecord.objects.filter(result=ExportItemRecord.Result.FAILED)
    assert sorted(record.item_snapshot["contraAccount"] is None for record in refused) == [
        False,
        True,
    ]
    assert [e["body"]["event"] for e in env.final_events(job_id)] == ["completed_with_errors"]


def test_when_every_item_fails_the_job_is_failed_with_the_shared_reason(env):
    job_id = env.job({"missing_contra": 2})
    assert env.run().outcome == Outcome.FAILED_JOB
    job = env.pleo(job_id)["job"]
    assert job["status"] == "failed"
    assert job["failureReasonType"] == "missing_configuration"
    assert "All 2 items failed" in job["failureReason"]
    assert JournalEntry.objects.count() == 0


# --- pre-export validation -------------------------------------------------------------------


class UnreachableAdapter(AccountingAdapter):
    name = "unreachable"
    label = "Unreachable ERP"

    def validate(self, job):
        return ValidationResult.failed(
            "accounting_system_unreachable", "Failed to reach the Accounting System."
        )


class CrashingAdapter(AccountingAdapter):
    name = "crashing"
    label = "Crashing ERP"

    def validate(self, job):
        raise ConnectionError("ERP down")


class NoVendorAdapter(AccountingAdapter):
    name = "novendor"
    label = "Vendorless ERP"
    supports_vendor_based_bookkeeping = False

    def book(self, request):  # pragma: no cover - never reached
        raise AssertionError("no item may be touched")


@pytest.mark.parametrize(
    ("adapter", "vendor_based", "reason_type", "reason_text"),
    [
        ("sage", False, "invalid_configuration", "'sage'"),  # not registered
        ("xero", False, "accounting_system_authentication_failure", "not connected to Xero"),
        ("unreachable", False, "accounting_system_unreachable", "Failed to reach"),
        ("crashing", False, "accounting_system_unreachable", "ConnectionError"),
        ("novendor", True, "invalid_configuration", "vendor-based bookkeeping"),
    ],
)
def test_failed_validation_fails_the_job_and_touches_no_item(
    env, monkeypatch, adapter, vendor_based, reason_type, reason_text
):
    for cls in (UnreachableAdapter, CrashingAdapter, NoVendorAdapter):
        monkeypatch.setitem(ADAPTERS, cls.name, cls)
    env.use_adapter(adapter)
    job_id = env.job(2, vendor_based_bookkeeping=vendor_based)
    assert env.run().outcome == Outcome.FAILED_JOB
    job = env.pleo(job_id)["job"]
    assert (job["status"], job["failureReasonType"]) == ("failed", reason_type)
    assert reason_text in job["failureReason"]
    paths = {e["path"] for e in env.state.requests()}
    assert not any("/items" in path or "export-items" in path for path in paths)
    assert not ExportItemRecord.objects.exists()
    assert steps(env)[-2:] == ["validation_failed", "job_failed"]
    local = ExportJob.objects.get(pleo_job_id=job_id)
    assert (local.status, local.failure_reason_type) == ("failed", reason_type)


def test_a_failed_event_that_does_not_get_through_is_retried_after_validating_again(
    env, monkeypatch
):
    monkeypatch.setitem(ADAPTERS, UnreachableAdapter.name, UnreachableAdapter)
    env.use_adapter(UnreachableAdapter.name)
    job_id = env.job(2)
    fault = env.state.add_fault(
        "status", "POST", EVENTS, status=503, body_match={"event": "failed"}, count=None
    )
    assert env.run().outcome == Outcome.STARTED  # 'failed' sent 3 times, outcome unknown
    assert len(env.final_events(job_id)) == lifecycle_common.MAX_FINAL_EVENT_ATTEMPTS
    assert ExportJob.objects.get(pleo_job_id=job_id).processing_state == "validating"
    env.state.remove_fault(fault.id)
    assert env.run(recover=True).outcome == Outcome.FAILED_JOB
    assert steps(env).count("validation_failed") == 2
    assert not any("/items" in e["path"] for e in env.state.requests())
    assert env.pleo(job_id)["job"]["failureReasonType"] == "accounting_system_unreachable"


def test_missing_contra_accounts_on_export_items_fails_the_job(env):
    job_id = env.job(2)
    env.state.update_company(env.remote.id, contra_accounts_configured=False)
    assert env.run().outcome == Outcome.FAILED_JOB
    job = env.pleo(job_id)["job"]
    assert (job["status"], job["failureReasonType"]) == ("failed", "missing_configuration")
    assert env.puts(job_id) == []


# --- the command line, every stage ---------------------------------------------------------


def test_check_exports_carries_a_job_through_every_stage(env, monkeypatch, capsys):
    states = []
    set_state = lifecycle._Carrier.set_state

    def spy(self, state):
        states.append(state)
        return set_state(self, state)

    monkeypatch.setattr(lifecycle._Carrier, "set_state", spy)
    job_id = env.job({"normal": 2, "refund": 1})
    call_command("check_exports", "--json", "--company", str(env.company.pleo_company_id))
    line = json.loads(capsys.readouterr().out.strip())
    assert (line["outcome"], line["job_id"]) == ("completed", job_id)
    assert states == ["validating", "items", "reporting", "finishing"]
    job = ExportJob.objects.get(pleo_job_id=job_id)
    assert (job.processing_state, job.status) == ("done", "completed")
    trail = AuditEntry.objects.filter(export_job=job).order_by("id")
    calls = [(a.step, a.http_method, a.http_status) for a in trail if a.http_method]
    assert calls == [
        ("selected", "GET", 200),
        ("started", "POST", 202),
        ("items_read", "GET", 200),
        ("export_items_read", "GET", 200),
        ("items_reported", "PUT", 200),
        ("completed", "POST", 202),
    ]
    text = " ".join(trail.values_list("message", flat=True))
    assert env.key.key not in text
