"""Database queries per exported item, counted (not timed): the journal books a report chunk in
one transaction (its entries, their lines and our records of them, in bulk writes), so an item
costs a fraction of a query, with receipts or without; the Xero adapter writes its bookings per
batch too, leaving the per-call costs of Xero's budget, token and audit.

Counted with ``CaptureQueriesContext`` over the whole run (list, start, book, report, finish),
transaction control (BEGIN, SAVEPOINT, RELEASE) apart, as ``bench/common.py`` counts them. And
what the batching must keep: an item that breaks the batch fails alone; a crash inside the
batch's transaction leaves neither entries nor records, and the next run books each item once.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from exports import clock
from exports.adapters import ADAPTERS
from exports.adapters.journal import JournalAdapter
from exports.models import Company, ExportItemRecord, JournalEntry, XeroBooking
from exports.receipts.models import Receipt
from exports.services import budget, xero_connections
from exports.services.lifecycle_common import idempotency_key
from exports.services.start_flow import Outcome
from tests.reliability.inprocess import SimulatedCrash, crash_at
from tests.test_lifecycle import env  # noqa: F401 - the lifecycle tests' sandbox company
from tests.xero.test_booking import bx  # noqa: F401 - that company connected to the local Xero

pytestmark = pytest.mark.django_db

ITEMS = 50
XERO_ITEMS = 20
CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def queries_of(run) -> tuple[object, int]:
    """``run()``'s result and the statements it sent, transaction control apart."""
    with CaptureQueriesContext(connection) as captured:
        result = run()
    sent = [q["sql"] for q in captured.captured_queries]
    return result, sum(1 for sql in sent if not sql.lstrip().upper().startswith(CONTROL))


@pytest.mark.parametrize("receipts", [False, True], ids=["no-receipts", "receipts"])
def test_a_journal_export_makes_at_most_4_queries_an_item(env, settings, receipts):  # noqa: F811
    settings.RECEIPTS_DOWNLOAD_CONCURRENCY = 1  # the downloads' threads use no database
    job_id = env.job(ITEMS, **({} if receipts else {"receipts": {"count": 0}}))
    result, count = queries_of(env.run)
    assert result.outcome == Outcome.COMPLETED
    assert JournalEntry.objects.filter(export_job__pleo_job_id=job_id).count() == ITEMS
    assert (Receipt.objects.count() > 0) == receipts
    assert count / ITEMS <= 4, f"{count} queries for {ITEMS} items"


def test_a_xero_export_writes_its_bookings_per_batch(bx, settings, monkeypatch):  # noqa: F811
    """Two jobs, 5 and 20 items: what the 15 more items cost, less what their Xero calls cost
    (each: its three budgets' UPDATEs, its token read, its audit row; an attachment also its
    record). The budgets are raised
    (as ``bench/xero.py`` does), so no call waits for a minute to pass."""
    settings.RECEIPTS_DOWNLOAD_CONCURRENCY = 1
    for name in ("XERO_BUDGET", "XERO_APP_BUDGET"):
        monkeypatch.setattr(xero_connections, name, budget.Rate(limit=10**6))
    bx.xero.state.set_switches(minute_limit=10**6, app_minute_limit=10**7)
    costs = []
    for items in (5, XERO_ITEMS):
        bx.job(items)
        bx.xero.state.clear_requests()
        result, count = queries_of(bx.run)
        assert result.outcome == Outcome.COMPLETED
        calls = [r["path"] for r in bx.xero.state.requests() if "/api.xro/" in r["path"]]
        costs.append((count, len(calls), len([p for p in calls if "/Attachments/" in p])))
    assert XeroBooking.objects.filter(document_id__isnull=False).count() == 5 + XERO_ITEMS
    (small, small_calls, small_files), (large, large_calls, large_files) = costs
    more_calls = large_calls - small_calls
    assert more_calls >= XERO_ITEMS - 5  # a receipt an item: a call each
    # Each attachment is also recorded as soon as Xero has it (one UPDATE: crash-safety).
    per_item = (large - small - 5 * more_calls - (large_files - small_files)) / (XERO_ITEMS - 5)
    # An item's own bookkeeping (checks, bookings, records): it was about 13 queries.
    assert per_item <= 1, f"{costs} (queries, Xero calls): {per_item:.2f} an item"


class FragileJournal(JournalAdapter):
    """The journal, failing unexpectedly whenever the item ``breaking`` is in what it books."""

    name = "fragile-journal"
    breaking = ""

    def book(self, request):
        return self.book_batch([request])[0]

    def book_batch(self, requests):
        if any(str(r.accounting_entry_id) == self.breaking for r in requests):
            raise RuntimeError("the ledger broke")
        return super().book_batch(requests)


def test_an_item_that_breaks_its_batch_fails_alone(env, monkeypatch):  # noqa: F811
    monkeypatch.setitem(ADAPTERS, FragileJournal.name, FragileJournal)
    env.use_adapter(FragileJournal.name)
    job_id = env.job(5, receipts={"count": 0})
    breaking = sorted(env.items(job_id))[2]
    monkeypatch.setattr(FragileJournal, "breaking", breaking)
    assert env.run().outcome == Outcome.COMPLETED_WITH_ERRORS
    items = env.items(job_id)
    assert items.pop(breaking)["failureReasonType"] == "unexpected_failure"
    assert {item["status"] for item in items.values()} == {"successful"}
    booked = set(JournalEntry.objects.values_list("accounting_entry_id", flat=True))
    assert booked == {uuid.UUID(entry) for entry in items}


def test_a_crash_inside_the_batch_leaves_no_entry_and_books_each_item_once(env):  # noqa: F811
    job_id = env.job(4, receipts={"count": 0})
    with crash_at("after_adapter_call"), pytest.raises(SimulatedCrash):
        env.run()
    # The batch's entries and our records of them were one transaction: both rolled back.
    assert not JournalEntry.objects.exists()
    states = set(ExportItemRecord.objects.values_list("state", flat=True))
    assert states == {ExportItemRecord.State.PENDING}
    Company.objects.filter(pk=env.company.pk).update(lease_expires_at=clock.now())
    assert env.run().outcome == Outcome.COMPLETED
    entries = list(JournalEntry.objects.values_list("accounting_entry_id", flat=True))
    assert sorted(str(entry) for entry in entries) == sorted(env.items(job_id))
    assert sorted(env.put_ids(job_id)) == sorted(env.items(job_id))  # reported once


def test_a_booking_left_without_a_document_is_written_over_by_the_batch(bx):  # noqa: F811
    """A run that stopped after recording a batch but before Xero saw it: the next batch finds
    the row by its key (no document found by its text), updates it in bulk and books once."""
    job_id = bx.job({"normal": 2})
    first, second = sorted(bx.env.items(job_id))
    left = XeroBooking.objects.create(
        connection=bx.connection,
        tenant_id=bx.connection.tenant_id,
        idempotency_key=idempotency_key(job_id, first),
        accounting_entry_id=uuid.UUID(first),
        kind=XeroBooking.Kind.MANUAL_JOURNAL,
        reference="a text Xero never saw",
        batch_key="pleo-batch-earlier",
    )
    assert bx.run().outcome == Outcome.COMPLETED
    assert len(bx.documents()) == 2
    left.refresh_from_db()
    assert left.document_id is not None and left.batch_key != "pleo-batch-earlier"
    assert first in left.reference  # the text sent this time
    assert XeroBooking.objects.count() == 2
    assert {i["status"] for i in bx.env.items(job_id).values()} == {"successful"}
