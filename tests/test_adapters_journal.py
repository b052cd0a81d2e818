"""The journal against the adapter contract: precheck passes what it books, lookup by our key or
by Pleo's accounting entry id (a re-export), book_batch; and the lifecycle's use of precheck
(a refused item is recorded failed and never booked; an adapter that cannot check pauses)."""

from __future__ import annotations

import copy
import uuid

import pytest

from exports.adapters import ADAPTERS, AdapterUnavailable, ItemCheck, JournalAdapter
from exports.models import ExportItemRecord, JournalEntry
from exports.services.start_flow import Outcome
from tests import lifecycle_support, test_journal
from tests.factories import make_company
from tests.lifecycle_support import audit
from tests.test_journal import book, item, line, request

pytestmark = pytest.mark.django_db

journal = test_journal.journal  # the journal of the journal tests (a fixture)
env = lifecycle_support.env  # the sandbox company of the lifecycle tests (a fixture)


def test_precheck_passes_a_bookable_item_and_writes_nothing(journal, django_assert_num_queries):
    body = item([line(10000, 2500)], total=12500)
    with django_assert_num_queries(0):
        assert journal.precheck(request(body)) == ItemCheck.passed()
    assert book(journal, body).booked


def test_lookup_finds_a_booking_by_key_or_by_accounting_entry_id_in_the_company(journal):
    body = item([line(10000, 2500)], total=12500)
    first = book(journal, body, key="key-1")
    entry_id = body["accountingEntryId"]
    assert journal.lookup(accounting_entry_id=entry_id) == first  # a re-export: new key
    assert journal.lookup(accounting_entry_id=uuid.UUID(entry_id)) == first
    assert journal.lookup(idempotency_key="key-new", accounting_entry_id=entry_id) == first
    assert journal.lookup(idempotency_key="key-new") is None
    assert journal.lookup(accounting_entry_id=uuid.uuid4()) is None
    assert journal.lookup(accounting_entry_id="not-a-uuid") is None
    assert journal.lookup() is None
    # Another company's journal does not have it.
    other = JournalAdapter(company=make_company(name="Other", pleo_company_id=uuid.uuid4()))
    assert other.lookup(accounting_entry_id=entry_id) is None
    # The key is asked first: its entry wins over another entry of the accounting entry id.
    second = book(journal, item([line(500, 0)], total=500), key="key-2")
    assert journal.lookup(idempotency_key="key-2", accounting_entry_id=entry_id) == second


def test_book_batch_books_each_item_as_book_does(journal):
    good = item([line(10000, 2500)], total=12500)
    broken = item([line(10000, 2500)], total=12501)
    results = journal.book_batch([request(good, "b-1"), request(broken, "b-2")])
    assert [(r.booked, r.failure_type) for r in results] == [
        (True, None),
        (False, "validation_failure"),
    ]
    assert results[0] == journal.lookup(idempotency_key="b-1")
    assert JournalEntry.objects.count() == 1
    # Again, as after an interruption: the same booking, nothing new.
    again = journal.book_batch([request(copy.deepcopy(good), "b-1")])
    assert again == results[:1] and JournalEntry.objects.count() == 1


# --- the lifecycle runs precheck before booking ------------------------------------------------


class PickyJournal(JournalAdapter):
    """The journal, with a precheck that refuses the items in ``refuse`` (and counts books)."""

    name = "picky-journal"
    refuse: frozenset[str] = frozenset()
    unavailable = False
    booked: list[str] = []

    def precheck(self, request):
        if self.unavailable:
            raise AdapterUnavailable("connection refused")
        if request.accounting_entry_id in self.refuse:
            return ItemCheck.failed("tag_unknown", "The tag 'Project X' is not in the ERP.")
        return super().precheck(request)

    def book(self, request):
        type(self).booked.append(request.accounting_entry_id)
        return super().book(request)


@pytest.fixture
def picky(env, monkeypatch):
    monkeypatch.setitem(ADAPTERS, PickyJournal.name, PickyJournal)
    monkeypatch.setattr(PickyJournal, "booked", [])
    env.use_adapter(PickyJournal.name)
    return env


def test_an_item_refused_by_precheck_is_failed_with_its_reason_and_never_booked(picky, monkeypatch):
    job_id = picky.job(3)
    refused, *rest = sorted(picky.items(job_id))
    monkeypatch.setattr(PickyJournal, "refuse", frozenset({refused}))
    assert picky.run().outcome == Outcome.COMPLETED_WITH_ERRORS
    assert sorted(PickyJournal.booked) == rest
    pleo_item = picky.items(job_id)[refused]
    assert (pleo_item["status"], pleo_item["failureReasonType"]) == ("failed", "tag_unknown")
    assert pleo_item["failureReason"] == "The tag 'Project X' is not in the ERP."
    record = ExportItemRecord.objects.get(accounting_entry_id=refused)
    assert (record.adapter, record.failure_reason_type) == (PickyJournal.name, "tag_unknown")
    assert record.booking_started_at is None  # never marked booking
    assert not JournalEntry.objects.filter(accounting_entry_id=refused).exists()
    assert refused in audit(picky, "item_failed").message


def test_an_adapter_that_cannot_check_pauses_the_job_and_books_nothing(picky, monkeypatch):
    job_id = picky.job(2)
    monkeypatch.setattr(PickyJournal, "unavailable", True)
    assert picky.run().outcome == Outcome.STARTED
    assert PickyJournal.booked == [] and not JournalEntry.objects.exists()
    assert set(ExportItemRecord.objects.values_list("state", flat=True)) == {"pending"}
    monkeypatch.setattr(PickyJournal, "unavailable", False)
    assert picky.run(recover=True).outcome == Outcome.COMPLETED
    assert {i["status"] for i in picky.items(job_id).values()} == {"successful"}
