"""The export lifecycle's items against the Pleo sandbox (``exports.services.lifecycle_items``):
pages read in any order and booked in a fixed one, a resumed run that skips items already final,
and crash-safety: an item is booked at most once, settled by the adapter's lookup or reported
failed when the adapter cannot look it up.
"""

from __future__ import annotations

from collections import Counter

import pytest

from exports import clock
from exports.adapters import ADAPTERS, AccountingAdapter, BookingResult
from exports.models import AuditEntry, Company, ExportItemRecord, JournalEntry, Trigger
from exports.services import lifecycle
from exports.services.start_flow import Outcome
from tests import lifecycle_support
from tests.lifecycle_support import audit

pytestmark = pytest.mark.django_db

env = lifecycle_support.env  # the sandbox company of the lifecycle tests (a fixture)


# --- pages and order ------------------------------------------------------------------------


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
