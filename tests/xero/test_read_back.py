"""Reconciliation of Xero bookings against the local Xero, over real HTTP: a job exported to Xero
reconciles ``matched``; a document's amount changed there → ``changed``; voided or deleted →
``missing``; the same expense booked again by someone else → ``booked_twice``; Xero unreachable
or refusing (429) → ``ledger_unreadable``, never a false ``missing``. The reads made are counted
and their parameters checked against Xero's OpenAPI file; the answers are schema-checked."""

from __future__ import annotations

import pytest
import requests

from exports import clock
from exports.models import ExportItemRecord
from exports.services import xero_read_back
from exports.services.reconciliation import ReconStatus, reconciliation_report
from exports.services.start_flow import Outcome
from exports.xero.models import BookingMethod
from exports.xero.openapi import load
from tests.test_lifecycle import env  # noqa: F401 - the lifecycle tests' sandbox company
from tests.xero.test_booking import CLEARING, EXPENSE, bx  # noqa: F401 - connected to local Xero
from tests.xero_sandbox.openapi import validate_response

pytestmark = pytest.mark.django_db


def report(bx):  # noqa: F811
    today = clock.now().date()
    return reconciliation_report(company=bx.env.company, date_from=today, date_to=today)


def statuses(found) -> dict[str, str]:
    return {row.external_id: row.status for row in found.rows}


def reads(bx) -> list[dict]:  # noqa: F811
    """The product's document reads the local Xero answered, each checked: its parameters are
    those Xero documents for the operation, its answer fits Xero's schema."""
    spec = load("accounting")
    found = []
    for entry in bx.xero.state.requests(method="GET"):
        kind = entry["path"].rsplit("/", 1)[-1]
        if kind not in ("ManualJournals", "Invoices", "CreditNotes"):
            continue
        parameters = spec["paths"][f"/{kind}"]["get"]["parameters"]
        names = {
            p.get("name") or spec["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]["name"]
            for p in parameters
        }
        assert set(entry["query"]) <= names, entry["query"]
        found.append(entry)
    return found


def check_answers(bx, kind: str, where: str) -> None:  # noqa: F811
    """The local Xero's answer to our kind of read, checked against Xero's schema."""
    answer = requests.get(
        f"{bx.xero.api_url}/{kind}",
        params={"where": where, "page": 1, "pageSize": 100},
        headers=bx.xero.headers(bx.tenant),
        timeout=5,
    )
    assert answer.status_code == 200
    validate_response(answer.json(), "GET", f"/api.xro/2.0/{kind}", 200)


def test_journals_matched_then_changed_missing_and_booked_twice(bx):  # noqa: F811
    job_id = bx.job({"normal": 4, "refund": 1})
    assert bx.run().outcome == Outcome.COMPLETED
    bx.xero.state.clear_requests()
    found = report(bx)
    assert found.ok and found.totals()[ReconStatus.MATCHED] == 5
    assert len(reads(bx)) == 1  # five journals: one call
    record = ExportItemRecord.objects.filter(export_job__pleo_job_id=job_id).first()
    assert record.booked_accounts.split(",") == sorted({EXPENSE, CLEARING})  # Xero's codes
    journals = {j["ManualJournalID"]: j for j in bx.documents()}
    where = reads(bx)[0]["query"]["where"][0]
    check_answers(bx, "ManualJournals", where)

    changed, voided, deleted, twinned, kept = (r.external_id for r in found.rows)
    lines = journals[changed]["JournalLines"]
    edited = [
        {**{k: line[k] for k in ("LineAmount", "AccountCode", "TaxType", "TaxAmount")}}
        for line in lines
    ]
    debit = next(line for line in edited if line["AccountCode"] == EXPENSE)
    credit = next(line for line in edited if line["AccountCode"] == CLEARING)
    debit["LineAmount"] = round(debit["LineAmount"] + 10, 2)
    credit["LineAmount"] = round(credit["LineAmount"] - 10, 2)
    bx.xero.state.edit_document(bx.tenant.id, changed, JournalLines=edited)
    bx.xero.state.set_document_status(bx.tenant.id, voided, "VOIDED")
    bx.xero.state.set_document_status(bx.tenant.id, deleted, "DELETED")
    copy = journals[twinned]
    twin = requests.put(  # the same expense booked again, by hand or another integration
        f"{bx.xero.api_url}/ManualJournals",
        json={
            "ManualJournals": [
                {
                    "Narration": copy["Narration"] + " (copy)",
                    "LineAmountTypes": copy["LineAmountTypes"],
                    "JournalLines": [
                        {k: line[k] for k in ("LineAmount", "AccountCode", "TaxType", "TaxAmount")}
                        for line in copy["JournalLines"]
                    ],
                }
            ]
        },
        headers=bx.xero.headers(bx.tenant),
        timeout=5,
    ).json()["ManualJournals"][0]["ManualJournalID"]

    bx.xero.state.clear_requests()
    found = report(bx)
    assert statuses(found) == {
        changed: ReconStatus.CHANGED,
        voided: ReconStatus.MISSING,
        deleted: ReconStatus.MISSING,
        twinned: ReconStatus.BOOKED_TWICE,
        kept: ReconStatus.MATCHED,
    }
    by_id = {row.external_id: row for row in found.rows}
    assert "amount changed" in by_id[changed].detail.lower()
    assert twin in by_id[twinned].detail
    assert len(reads(bx)) == 1 and len(found.flagged) == 4


def test_bills_and_credit_notes_one_call_per_kind_and_a_change(bx):  # noqa: F811
    bx.configure(default_method=BookingMethod.ACCOUNTS_PAYABLE, document_status="posted")
    bx.job({"normal": 2, "refund": 1})
    assert bx.run().outcome == Outcome.COMPLETED
    bx.xero.state.clear_requests()
    found = report(bx)
    assert found.totals()[ReconStatus.MATCHED] == 3, [r.detail for r in found.rows]
    assert sorted(e["path"].rsplit("/", 1)[1] for e in reads(bx)) == ["CreditNotes", "Invoices"]
    for entry in reads(bx):
        check_answers(bx, entry["path"].rsplit("/", 1)[1], entry["query"]["where"][0])

    (credit,) = bx.documents("CreditNotes")
    items = [{**item, "UnitAmount": item["UnitAmount"] + 5} for item in credit["LineItems"]]
    keep = ("Description", "Quantity", "UnitAmount", "AccountCode", "TaxType", "TaxAmount")
    bx.xero.state.edit_document(
        bx.tenant.id, credit["CreditNoteID"], LineItems=[{k: i[k] for k in keep} for i in items]
    )
    assert statuses(report(bx))[credit["CreditNoteID"]] == ReconStatus.CHANGED


def test_calls_are_one_per_25_bookings(bx, monkeypatch):  # noqa: F811
    monkeypatch.setattr(xero_read_back, "ITEMS_PER_CALL", 2)
    bx.job({"normal": 5})
    assert bx.run().outcome == Outcome.COMPLETED
    bx.xero.state.clear_requests()
    assert report(bx).totals()[ReconStatus.MATCHED] == 5
    assert len(reads(bx)) == 3  # ⌈5 / 2⌉


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 503, "count": None},
        {"kind": "rate_limit", "retry_after": 1, "headers": {"X-Rate-Limit-Problem": "day"}},
        {"kind": "reset", "count": None},
    ],
    ids=["503", "429-day", "reset"],
)
def test_xero_unreachable_or_refusing_is_said_not_missing(bx, fault, monkeypatch):  # noqa: F811
    bx.job({"normal": 2})
    assert bx.run().outcome == Outcome.COMPLETED
    bx.xero.state.add_fault(fault.pop("kind"), "GET", path_regex=r".*/ManualJournals", **fault)
    bx.waits.install(monkeypatch)  # the retries' backoff moves the clocks (~2.7 s slept otherwise)
    found = report(bx)
    assert {row.status for row in found.rows} == {ReconStatus.LEDGER_UNREADABLE}
    assert not found.ok and "reconcile again later" in found.rows[0].detail


def test_a_minute_429_is_retried_after_retry_after(bx):  # noqa: F811
    bx.job({"normal": 2})
    assert bx.run().outcome == Outcome.COMPLETED
    bx.xero.state.add_fault(
        "rate_limit",
        "GET",
        path_regex=r".*/ManualJournals",
        retry_after=1,
        headers={"X-Rate-Limit-Problem": "minute"},
    )
    bx.xero.state.clear_requests()
    assert report(bx).totals()[ReconStatus.MATCHED] == 2
    assert [e["status"] for e in reads(bx)] == [429, 200]
