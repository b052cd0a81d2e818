"""The Xero calls a job needs, estimated before booking, against Xero's budgets and the job's
expiry (``exports.services.xero_estimate``, ``exports.services.expiry_guard.plan_calls``): the
estimate equals the local Xero's own count for real jobs; a job that fits is audited and booked;
a job too close to its expiry, or an organisation whose day budget is nearly spent, is booked in
part, reported, and finished as Pleo's contract allows (the rest failed, to be exported again);
a day budget that cannot take the first item defers the run."""

from __future__ import annotations

import re
import time

import pytest
from django.urls import reverse

from exports import clock
from exports.adapters import CallEstimate
from exports.models import AuditEntry, ExportJob, RequestBudget, Trigger
from exports.services import budget, xero_connections
from exports.services.start_flow import Outcome
from exports.xero.models import BookingMethod
from tests.test_lifecycle import env  # noqa: F401 - the lifecycle tests' sandbox company
from tests.xero.test_booking import bx as booked  # noqa: F401 - local Xero + Pleo sandbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def bx(booked):  # noqa: F811
    """``tests.xero.test_booking``'s company, the local Xero's log of its mapping sync cleared."""
    booked.xero.state.clear_requests()
    return booked


RECEIPT = {"count": 1, "size": 2_000, "type": "application/pdf"}


def accounting_calls(bx) -> list[dict]:  # noqa: F811
    """The local Xero's own record of the Accounting API calls it answered."""
    return [r for r in bx.xero.state.requests() if "/api.xro/" in r["path"]]


def estimate_entry() -> AuditEntry:
    return AuditEntry.objects.filter(step="calls_estimated").order_by("id").last()


def estimated_total(entry: AuditEntry) -> int:
    return int(re.search(r"to book: (\d+) calls", entry.message).group(1))


# --- the reckoning, without HTTP ---------------------------------------------------------------


class FakeNow:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "rate", [xero_connections.XERO_BUDGET, xero_connections.XERO_DAY_BUDGET, budget.Rate(6)]
)
def test_the_room_a_rate_predicts_is_what_the_budget_grants(rate):
    now = FakeNow()
    store = budget.DatabaseBudget(now=now)
    store.consume("k", rate)  # a used key: some backlog
    for within in (0.0, 7.5, 61.0):
        granted = 0
        backlog = max(RequestBudget.objects.get(key="k").tat - now.now, 0.0)
        predicted = rate.room(backlog=backlog, within=within)
        start = now.now
        while now.now <= start + within + 1e-9:
            while store.consume("k", rate).granted:
                granted += 1
            now.now += min(rate.interval / 3, 1.0)
        assert granted == predicted, (rate, within)
        assert rate.seconds_for(backlog=backlog, calls=predicted) <= within + 1e-6


def test_the_backlog_read_from_redis_is_the_one_its_grants_leave(redis_url, settings):
    settings.REDIS_URL, settings.PLEO_RATE_LIMIT_BACKEND = redis_url, "redis"
    budget._backends.clear()
    key, rate = f"estimate-{time.time_ns()}", budget.Rate(6)
    try:
        assert budget.budget_backlog(key=key) == 0.0
        granted = 0
        while budget.budget_backend().consume(key, rate).granted:
            granted += 1
        backlog = budget.budget_backlog(key=key)
        assert granted == rate.burst and rate.room(backlog=backlog, within=0) == 0
        assert abs(backlog - granted * rate.interval) < 1.0
    finally:
        budget._backends.clear()


def test_a_fresh_organisations_day_takes_a_thousand_item_job_within_the_hour():
    # Not a rate in disguise: a day budget with a burst of 55 granted 233 calls in an hour.
    day = xero_connections.XERO_DAY_BUDGET
    assert day.room(backlog=0.0, within=3600) >= 2 * 1016


def test_items_within_counts_whole_items_from_the_first():
    estimate = CallEstimate(item_calls=(3, 1, 0, 2), writes=1, attachments=3, reads=1)
    assert [estimate.items_within(calls) for calls in (0, 2, 3, 4, 5, 6)] == [0, 0, 1, 3, 3, 4]
    assert estimate.total == 6


# --- against the local Xero and the Pleo sandbox --------------------------------------------------


def test_an_estimate_that_fits_is_audited_and_equals_the_calls_xero_counted(bx):  # noqa: F811
    job_id = bx.job({"normal": 6, "refund": 2})
    assert bx.run().outcome == Outcome.COMPLETED
    entry = estimate_entry()
    assert entry.outcome == AuditEntry.Outcome.INFO and entry.message.endswith("All fit.")
    assert "day 4900 per day" in entry.message and "Pleo expires the job at" in entry.message
    files = sum(len(i["files"]) for i in bx.env.state.export_items(job_id))
    assert files > 0
    # Validation reads the organisation once before the estimate; every later call is in it:
    # the session's organisation read, one batch write, one call per receipt.
    assert estimated_total(entry) == len(accounting_calls(bx)) - 1 == 2 + files
    assert {i["status"] for i in bx.env.items(job_id).values()} == {"successful"}


@pytest.mark.parametrize("vendors", [True, False], ids=["vendor-codes", "supplier-names"])
def test_bills_with_new_suppliers_are_estimated_as_xero_counts_them(bx, vendors):  # noqa: F811
    bx.configure(default_method=BookingMethod.ACCOUNTS_PAYABLE)
    bx.job({"normal": 4, "refund": 1}, vendor_based_bookkeeping=vendors)
    assert bx.run().outcome == Outcome.COMPLETED
    calls = accounting_calls(bx)
    contacts = [c for c in calls if "/Contacts" in c["path"]]
    # New suppliers: by vendor code (account number), then by name, else created.
    assert contacts
    by_code = [c for c in contacts if "AccountNumber" in str(c["query"])]
    assert bool(by_code) == vendors
    assert estimated_total(estimate_entry()) == len(calls) - 1
    kinds = ("ManualJournals", "Invoices", "CreditNotes")
    writes = [c for c in calls if c["method"] == "PUT" and c["path"].endswith(kinds)]
    documents = [d for kind in kinds for d in bx.documents(kind)]
    assert len(writes) == len({w["path"] for w in writes}) >= 2  # one write per kind
    assert len(documents) == 5


def _pause_after_start(bx, job_id):  # noqa: F811
    """The first run starts and validates the job, then Pleo's export items fail: it pauses."""
    fault = bx.env.state.add_fault("status", "GET", "/v3/export-items", status=503, count=None)
    assert bx.run().outcome == Outcome.STARTED
    bx.env.state.remove_fault(fault.id)
    assert bx.env.pleo(job_id)["job"]["status"] == "in_progress"


def _advance(bx, seconds):  # noqa: F811
    bx.env.state.advance_clock(seconds)
    bx.xero.state.advance_clock(seconds)
    clock.advance(seconds)


def _resume_close_to_expiry(bx, monkeypatch, job_id):  # noqa: F811
    """53 minutes pass after the job was started: 20 s are left before the safety margin (6 min
    + 60 s skew), room for about 20 calls at our minute budget's steady 50 a minute (its burst
    of 5 went to the sync and the validation). Our clock stands still from here, so the time left
    is the same however long the run takes; the resumed run is at half of expiresIn, so it
    reports its first item early."""
    _pause_after_start(bx, job_id)
    _advance(bx, 3600 - 360 - 60 - 20)
    frozen = clock.now()
    monkeypatch.setattr(clock, "now", lambda: frozen)


def test_a_job_resumed_too_close_to_its_expiry_is_booked_in_part_and_finished(
    bx,  # noqa: F811
    admin_client,
    monkeypatch,
):
    job_id = bx.job(30, receipts=RECEIPT)  # 33 calls: more than our minute budget grants at once
    bx.env.state.set_switches(put_refreshes_last_updated=False)  # the early report helps not
    _resume_close_to_expiry(bx, monkeypatch, job_id)
    assert bx.env.run(trigger=Trigger.RECOVERY, recover=True).outcome == (
        Outcome.COMPLETED_WITH_ERRORS
    )
    entry = estimate_entry()
    assert entry.outcome == AuditEntry.Outcome.WARNING
    left = int(re.search(r"fit: (\d+) left for re-export", entry.message).group(1))
    items = bx.env.items(job_id).values()
    done = [i for i in items if i["status"] == "successful"]
    failed = [i for i in items if i["status"] == "failed"]
    assert done and len(failed) == left and len(done) + left == 30
    assert {i["failureReasonType"] for i in failed} == {"accounting_system_rate_limit"}
    assert all("export it again from Pleo" in i["failureReason"] for i in failed)
    assert len(bx.documents()) == len(done)  # every booking reported, nothing else booked
    assert {i["externalId"] for i in done} == {d["ManualJournalID"] for d in bx.documents()}
    assert bx.env.pleo(job_id)["job"]["status"] == "completed_with_errors"  # not expired
    room = int(re.search(r"room for (\d+) calls until then", entry.message).group(1))
    assert len(accounting_calls(bx)) - 1 <= room  # validation's read was in the first run
    # The job's admin page says why.
    job = ExportJob.objects.get(pleo_job_id=job_id)
    page = admin_client.get(reverse("admin:exports_exportjob_change", args=[job.pk]))
    text = page.content.decode()
    assert "Booked in part" in text and f"{left} left for re-export" in text
    assert "minute 55 per minute" in text


@pytest.mark.slow  # about 25 s: every item is booked at our minute budget's real pace
def test_the_items_left_out_are_planned_again_when_an_early_report_moves_the_deadline(
    bx,  # noqa: F811
    monkeypatch,
):
    job_id = bx.job(30, receipts=RECEIPT)
    _resume_close_to_expiry(bx, monkeypatch, job_id)  # Pleo's PUT refreshes lastUpdatedAt
    assert bx.env.run(trigger=Trigger.RECOVERY, recover=True).outcome == Outcome.COMPLETED
    first, second = AuditEntry.objects.filter(step="calls_estimated").order_by("id")
    assert first.outcome == AuditEntry.Outcome.WARNING and "left for re-export" in first.message
    assert second.outcome == AuditEntry.Outcome.INFO and second.message.endswith("All fit.")
    assert {i["status"] for i in bx.env.items(job_id).values()} == {"successful"}
    assert len(bx.documents()) == 30


def _spend_day_budget(bx, monkeypatch, *, room):  # noqa: F811
    """Xero's day as a quota (no refill within the hour) with ``room`` calls left."""
    quota = budget.Rate(limit=5000, window=86400.0, burst=4999)
    monkeypatch.setattr(xero_connections, "XERO_DAY_BUDGET", quota)
    key = f"xero_tenant_day:{bx.connection.tenant_id}"
    backlog = quota.tolerance - (room - 1) * quota.interval if room else quota.tolerance + 60
    RequestBudget.objects.update_or_create(key=key, defaults={"tat": time.time() + backlog})
    return key


def test_a_nearly_spent_day_budget_books_what_it_can_take_and_finishes(bx, monkeypatch):  # noqa: F811
    job_id = bx.job(10, receipts=RECEIPT)  # 12 calls
    key = _spend_day_budget(bx, monkeypatch, room=8)  # the job is validated with one of them
    assert bx.run().outcome == Outcome.COMPLETED_WITH_ERRORS
    entry = estimate_entry()
    assert entry.outcome == AuditEntry.Outcome.WARNING and "(7 at once)" in entry.message
    statuses = [i["status"] for i in bx.env.items(job_id).values()]
    # The organisation read, one write, five receipts: five items booked, five left.
    assert statuses.count("successful") == 5 and statuses.count("failed") == 5
    assert len(accounting_calls(bx)) == 8
    quota = xero_connections.XERO_DAY_BUDGET
    assert quota.room(backlog=budget.budget_backlog(key=key), within=0) == 0  # all of it used
    assert bx.env.pleo(job_id)["job"]["status"] == "completed_with_errors"


def test_a_day_budget_that_cannot_take_the_first_item_defers_the_run(bx, monkeypatch):  # noqa: F811
    job_id = bx.job(3, receipts=RECEIPT)
    key = _spend_day_budget(bx, monkeypatch, room=2)  # validation takes one; the first needs 3
    result = bx.run()
    assert result.outcome == Outcome.DEFERRED
    assert "day budget grants 1 calls now" in result.error
    assert bx.documents() == []
    assert {i["status"] for i in bx.env.items(job_id).values()} == {"pending"}
    RequestBudget.objects.filter(key=key).delete()  # a new day
    ExportJob.objects.filter(pleo_job_id=job_id).update(next_retry_at=None)
    bx.env.company.refresh_from_db()
    assert bx.env.run(trigger=Trigger.RECOVERY, recover=True).outcome == Outcome.COMPLETED
    assert len(bx.documents()) == 3


@pytest.mark.slow
def test_a_job_over_several_batches_is_estimated_as_xero_counts_it(bx, monkeypatch):  # noqa: F811
    # Our budgets out of the way (the call count, not the pace, is under test).
    for name in ("XERO_BUDGET", "XERO_APP_BUDGET"):
        monkeypatch.setattr(xero_connections, name, budget.Rate(limit=10**6))
    bx.xero.state.set_switches(minute_limit=10**6)
    bx.configure(default_method=BookingMethod.ACCOUNTS_PAYABLE)
    job_id = bx.job({"normal": 90, "refund": 30})  # bills and credit notes in three batches
    assert bx.run().outcome == Outcome.COMPLETED
    calls = accounting_calls(bx)
    assert estimated_total(estimate_entry()) == len(calls) - 1
    assert len([c for c in calls if c["path"].endswith(("/Invoices", "/CreditNotes"))]) == 6
    assert len(bx.env.put_ids(job_id)) == 120


def test_a_job_of_the_journal_adapter_has_no_estimate(bx):  # noqa: F811
    bx.env.use_adapter("journal")
    bx.env.job(2)
    assert bx.run().outcome == Outcome.COMPLETED
    assert estimate_entry() is None
    assert accounting_calls(bx) == []  # the Xero connection was not asked
