"""The export lifecycle against the Pleo sandbox over real HTTP: start → validate → items →
export items → book → report → final event, with the sandbox's faults, clock and switches.

What Pleo received is read from the sandbox's own request log and job record.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass

import pytest
import requests
from django.core.management import call_command

from exports import clock
from exports.adapters import ADAPTERS, AccountingAdapter, BookingResult, ValidationResult
from exports.adapters.journal import JournalAdapter
from exports.models import AuditEntry, Company, ExportItemRecord, ExportJob, JournalEntry, Trigger
from exports.pleo import PleoClient
from exports.services import lifecycle, lifecycle_common
from exports.services.start_flow import Outcome, company_check_run
from tests.factories import make_sandbox_company_and_key

pytestmark = pytest.mark.django_db

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


# --- batches, pages, order -------------------------------------------------------------------


def test_more_than_100_items_are_reported_in_batches_of_at_most_100_each_once(env):
    job_id = env.job(150)
    assert env.run().outcome == Outcome.COMPLETED
    assert [len(e["body"]) for e in env.puts(job_id)] == [100, 50]
    ids = env.put_ids(job_id)
    assert len(ids) == len(set(ids)) == 150
    assert JournalEntry.objects.count() == 150
    items_pages = env.state.requests("GET", f"/v3/export-jobs/{job_id}/items")
    assert len(items_pages) > 1  # every page was read


@pytest.mark.parametrize("order", ["reverse", "shuffled"])
def test_pages_out_of_order_are_all_read_and_booked_in_a_fixed_order(env, order):
    env.state.set_switches(list_order=order, page_size_default=2)
    job_id = env.job({"normal": 3, "foreign": 2, "refund": 2})
    assert env.run().outcome == Outcome.COMPLETED
    data = {item["accountingEntryId"]: item["date"] for item in env.state.export_items(job_id)}
    expected = sorted(data, key=lambda entry: (data[entry], entry))
    booked = [str(e.accounting_entry_id) for e in JournalEntry.objects.order_by("pk")]
    assert booked == expected
    assert Counter(env.put_ids(job_id)) == Counter({entry: 1 for entry in data})


def test_a_413_halves_the_batch_and_each_item_is_applied_once(env):
    job_id = env.job(6)
    env.state.add_fault(
        "status",
        "PUT",
        "/v3/export-jobs/{jobId}/items",
        status=413,
        body={
            "type": "EXPORT_JOB_ITEMS_UPDATE_LIMIT",
            "message": "Number of items to update is more than 100.",
        },
    )
    assert env.run().outcome == Outcome.COMPLETED
    assert [(e["status"], len(e["body"])) for e in env.puts(job_id)] == [
        (413, 6),
        (200, 3),
        (200, 3),
    ]
    assert len(set(env.put_ids(job_id))) == len(env.put_ids(job_id)) == 6
    assert audit(env, "batch_too_large").http_status == 413


# --- resumability ------------------------------------------------------------------------------


def test_a_transient_error_leaves_the_job_and_the_resumed_run_skips_final_items(env):
    job_id = env.job(5)
    fault = env.state.add_fault("status", "GET", "/v3/export-items", status=503, count=None)
    first = env.run()
    assert first.outcome == Outcome.STARTED
    assert Company.objects.get(pk=env.company.pk).work_pending is True
    assert audit(env, "paused").outcome == AuditEntry.Outcome.ERROR
    assert env.pleo(job_id)["job"]["status"] == "in_progress"

    # Meanwhile two items became final in Pleo (say, reported by a run whose records were lost).
    entries = list(env.items(job_id))
    env.put_items_directly(
        job_id,
        [
            {"accountingEntryId": entries[0], "status": "successful", "externalId": "X-1"},
            {
                "accountingEntryId": entries[1],
                "status": "failed",
                "failureReason": "Booked by hand",
                "failureReasonType": "validation_failure",
            },
        ],
    )
    env.state.remove_fault(fault.id)
    env.state.clear_requests()
    second = env.run(trigger=Trigger.RECOVERY, recover=True)
    assert second.outcome == Outcome.COMPLETED_WITH_ERRORS
    assert sorted(env.put_ids(job_id)) == sorted(entries[2:])
    assert "2 already final" in audit(env, "items_read").message
    assert JournalEntry.objects.count() == 3
    assert env.items(job_id)[entries[0]]["externalId"] == "X-1"  # never overwritten
    assert Company.objects.get(pk=env.company.pk).work_pending is False


def test_a_resumed_job_near_its_deadline_is_audited_at_risk_and_swept(env, monkeypatch):
    swept = []
    monkeypatch.setattr(
        "exports.services.sweep.company_check_enqueue",
        lambda **kw: swept.append(kw["company_id"]) or True,
    )
    from exports.services.sweep import leases_sweep_stale

    job_id = env.job(2)
    fault = env.state.add_fault("status", "GET", "/v3/export-items", status=503, count=None)
    assert env.run().outcome == Outcome.STARTED
    leases_sweep_stale()
    assert swept == []  # not at once: RECOVERY_RETRY_SECONDS after the run that paused
    env.state.advance_clock(60)
    clock.advance(60)
    leases_sweep_stale()
    assert swept == [env.company.pk]  # work_pending: the sweep picks the company up
    env.state.remove_fault(fault.id)
    # 50 minutes pass on both clocks in all: ten minutes are left of the hour.
    env.state.advance_clock(2940)
    clock.advance(2940)
    assert env.run(trigger=Trigger.RECOVERY, recover=True).outcome == Outcome.COMPLETED
    at_risk = audit(env, "at_risk")
    assert at_risk.outcome == AuditEntry.Outcome.WARNING
    assert "10 min left" in at_risk.message
    assert env.pleo(job_id)["job"]["status"] == "completed"


def test_crash_after_booking_is_reported_once_by_the_next_run_without_a_second_entry(
    env, monkeypatch
):
    job_id = env.job(3)
    with monkeypatch.context() as patch:

        def die(self):
            raise RuntimeError("worker killed")

        patch.setattr(lifecycle._Carrier, "flush", die)
        with pytest.raises(RuntimeError):
            env.run()
    assert env.puts(job_id) == []
    assert JournalEntry.objects.count() == 3
    records = ExportItemRecord.objects.filter(export_job__pleo_job_id=job_id)
    assert set(records.values_list("state", flat=True)) == {"booked"}
    # As if the run had died between the adapter call and recording its answer.
    lost = records.first()
    ExportItemRecord.objects.filter(pk=lost.pk).update(state="booking", external_id="")

    result = env.run(trigger=Trigger.RECOVERY, recover=True)
    assert result.outcome == Outcome.COMPLETED
    assert JournalEntry.objects.count() == 3
    ids = env.put_ids(job_id)
    assert len(ids) == len(set(ids)) == 3
    assert "confirms it as JE-" in audit(env, "item_recovered").message
    lost.refresh_from_db()
    assert (lost.state, lost.external_id) == (
        "reported",
        JournalEntry.objects.get(accounting_entry_id=lost.accounting_entry_id).number,
    )


class RemoteWithoutLookup(AccountingAdapter):
    """An ERP over the network that cannot find a booking by our key."""

    name = "remote-nolookup"
    label = "Remote ERP"
    calls: list[str] = []
    crash_on: set[str] = set()

    def book(self, request):
        self.calls.append(request.accounting_entry_id)
        if request.accounting_entry_id in self.crash_on:
            raise TimeoutError("read timeout")
        return BookingResult.success(external_id=f"R-{len(self.calls)}", exported_at=clock.now())


def test_an_adapter_that_cannot_look_up_reports_an_interrupted_item_failed_never_rebooks(
    env, monkeypatch
):
    monkeypatch.setitem(ADAPTERS, RemoteWithoutLookup.name, RemoteWithoutLookup)
    monkeypatch.setattr(RemoteWithoutLookup, "calls", [])
    env.use_adapter(RemoteWithoutLookup.name)
    job_id = env.job(3)
    data = {i["accountingEntryId"]: i["date"] for i in env.state.export_items(job_id)}
    first, second, third = sorted(data, key=lambda entry: (data[entry], entry))
    monkeypatch.setattr(RemoteWithoutLookup, "crash_on", {second})

    assert env.run().outcome == Outcome.STARTED  # the outcome of `second` is unknown
    assert RemoteWithoutLookup.calls == [first, second]
    assert env.items(job_id)[first]["status"] == "successful"  # reported before stopping
    assert Company.objects.get(pk=env.company.pk).work_pending is True

    assert env.run(recover=True).outcome == Outcome.COMPLETED_WITH_ERRORS
    assert RemoteWithoutLookup.calls == [first, second, third]  # `second` never again
    interrupted = env.items(job_id)[second]
    assert (interrupted["status"], interrupted["failureReasonType"]) == (
        "failed",
        "unexpected_failure",
    )
    assert "not booked again" in interrupted["failureReason"]


# --- unknown outcomes and refusals -----------------------------------------------------------


@pytest.mark.parametrize(("kind", "sent_twice"), [("apply_then_drop", False), ("status", True)])
def test_an_unknown_put_outcome_is_reconciled_and_only_unapplied_updates_are_resent(
    env, settings, kind, sent_twice
):
    settings.PLEO_ITEMS_BATCH_SIZE = 2
    job_id = env.job(3)
    env.state.add_fault(kind, "PUT", "/v3/export-jobs/{jobId}/items", status=503)
    assert env.run().outcome == Outcome.COMPLETED
    ids = [u["accountingEntryId"] for e in env.puts(job_id) for u in e["body"]]
    counts = Counter(ids)
    assert len(counts) == 3
    # Dropped after it was applied: nothing is sent twice. Refused with 503: the two are resent.
    assert sorted(counts.values()) == ([1, 2, 2] if sent_twice else [1, 1, 1])
    assert audit(env, "report_reconciled") is not None
    assert len(env.final_events(job_id)) == 1


def test_per_item_errors_are_audited_and_the_item_stays_unreported(env):
    job_id = env.job(3)
    rejected = list(env.items(job_id))[0]
    env.state.add_fault(
        "status",
        "PUT",
        "/v3/export-jobs/{jobId}/items",
        status=200,
        body={
            "data": [],
            "errors": [
                {
                    "accountingEntryId": rejected,
                    "type": "ACCOUNTING_ENTRY_DOES_NOT_EXIST",
                    "message": "Accounting entry does not exist.",
                }
            ],
        },
    )
    assert env.run().outcome == Outcome.STARTED  # not finished: items still open in Pleo
    record = ExportItemRecord.objects.get(accounting_entry_id=rejected)
    assert record.state == "booked"
    assert rejected in audit(env, "item_report_rejected").message
    assert env.final_events(job_id) == []
    assert env.run(recover=True).outcome == Outcome.COMPLETED
    assert JournalEntry.objects.count() == 3


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


def test_a_slow_stage_reports_what_it_has_at_half_of_expires_in(env, monkeypatch):
    env.use_adapter(slow_bookings(monkeypatch, env.state, 700))
    job_id = env.job(6, expires_in=3600)
    # Six bookings take 4200 s: without early reports the job would expire at 3600 s.
    assert env.run().outcome == Outcome.COMPLETED
    assert [len(e["body"]) for e in env.puts(job_id)] == [3, 3]
    assert audit(env, "report_early") is not None
    assert env.pleo(job_id)["job"]["status"] == "completed"


def test_a_job_expiring_mid_run_is_mirrored_and_never_retried(env, monkeypatch):
    # Pleo's clock jumps alone.
    env.use_adapter(slow_bookings(monkeypatch, env.state, 4000, product_clock_too=False))
    job_id = env.job(2)
    assert env.run().outcome == Outcome.JOB_EXPIRED
    assert [e["status"] for e in env.puts(job_id)] == [422]
    assert env.final_events(job_id) == []
    job = ExportJob.objects.get(pleo_job_id=job_id)
    assert (job.status, job.failure_reason_type, job.processing_state) == (
        "failed",
        "job_expired",
        "done",
    )
    assert "Ask the bookkeeper to export again from Pleo" in audit(env, "job_ended").message
    assert env.run().outcome == Outcome.NOTHING_PENDING
    assert len(env.puts(job_id)) == 1

    # The user re-exports the same expenses: nothing is booked twice in the journal.
    entries = list(env.items(job_id))
    env.use_adapter("journal")
    again = env.job(2, accounting_entry_ids=entries)
    assert env.run().outcome == Outcome.COMPLETED
    assert JournalEntry.objects.count() == 2
    assert {i["externalId"] for i in env.pleo(again)["items"]} == {
        e.number for e in JournalEntry.objects.all()
    }


def test_final_event_422_after_our_event_landed_is_not_sent_again(env):
    job_id = env.job(2)
    env.state.add_fault(
        "status",
        "POST",
        EVENTS,
        status=422,
        apply=True,
        body_match={"event": "completed"},
        body={"type": "INVALID_EXPORT_JOB_STATUS_CHANGE", "message": "Export Job status change"},
    )
    assert env.run().outcome == Outcome.COMPLETED
    assert len(env.final_events(job_id)) == 1
    assert audit(env, "finish_refused").http_status == 422
    assert ExportJob.objects.get(pleo_job_id=job_id).status == "completed"


def test_final_event_422_because_the_job_expired_stops_without_retrying(env, monkeypatch):
    post = PleoClient.post_export_job_event

    def expire_first(self, job_id, event, **kw):
        if event != "started":
            env.state.advance_clock(4000)
        return post(self, job_id, event, **kw)

    monkeypatch.setattr(PleoClient, "post_export_job_event", expire_first)
    job_id = env.job(2)
    assert env.run().outcome == Outcome.JOB_EXPIRED
    assert [e["status"] for e in env.final_events(job_id)] == [422]
    assert "job_expired" in audit(env, "job_ended").message
    assert ExportJob.objects.get(pleo_job_id=job_id).failure_reason_type == "job_expired"


@pytest.mark.parametrize(("kind", "posts"), [("apply_then_drop", 1), ("status", 2)])
def test_final_event_with_unknown_outcome_is_settled_by_rereading(env, kind, posts):
    job_id = env.job(2)
    env.state.add_fault(kind, "POST", EVENTS, status=503, body_match={"event": "completed"})
    assert env.run().outcome == Outcome.COMPLETED
    assert len(env.final_events(job_id)) == posts
    assert env.pleo(job_id)["job"]["status"] == "completed"
    assert audit(env, "finish_unknown") is not None


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
