"""Reading Xero bookings back (responses at the transport): the client's paged ``where`` read, the
read-back's one call per kind per 25 bookings with the expense's twins found in the same call,
voided and deleted documents left out, what a document amounts to, and Xero unreachable, its
429s and an unusable connection told as such (``ReadBackUnavailable``), never as missing."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from exports.adapters.base import ReadBackUnavailable
from exports.models import XeroBooking, XeroConnection
from exports.services import xero_read_back as rb
from exports.services.xero_documents import document_summary
from exports.xero.client import XeroClient
from exports.xero.openapi import load
from tests.xero.support import (
    ACCOUNTING,
    TENANT,
    VirtualWaits,
    make_connection,
    organisation_body,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("xero_settings")]

JOURNALS = f"{ACCOUNTING}/ManualJournals"


@pytest.fixture
def connection(settings, fresh_budget) -> XeroConnection:
    settings.PLEO_RATE_LIMIT_BACKEND = "database"
    settings.XERO_BUDGET_WAIT_SECONDS = 0
    made = make_connection()
    made.base_currency = "GBP"
    made.save(update_fields=["base_currency"])
    return made


def booked(connection, kind=XeroBooking.Kind.MANUAL_JOURNAL) -> XeroBooking:
    entry = uuid.uuid4()
    return XeroBooking.objects.create(
        connection=connection,
        tenant_id=TENANT,
        idempotency_key=f"key-{entry}",
        accounting_entry_id=entry,
        kind=kind,
        reference=f"Pleo {entry} (export job j)",
        document_id=uuid.uuid4(),
    )


def journal(document_id, entry, *, amount=100.0, status="POSTED", account="6100") -> dict:
    return {
        "ManualJournalID": str(document_id),
        "Narration": f"Pleo {entry} (export job j): taxi",
        "Status": status,
        "LineAmountTypes": "Exclusive",
        "JournalLines": [
            {"LineAmount": amount, "TaxAmount": 20.0, "AccountCode": account, "TaxType": "INPUT2"},
            {"LineAmount": -(amount + 20.0), "TaxAmount": 0.0, "AccountCode": "840"},
        ],
    }


def queries(calls) -> list[dict]:
    return [parse_qs(urlsplit(call.request.url).query) for call in calls]


@responses.activate
def test_the_client_follows_pages_until_one_is_not_full():
    from exports.pleo import BearerAuth
    from exports.pleo.connection import ClientConfig

    first = [{"ManualJournalID": str(uuid.uuid4())} for _ in range(3)]
    second = [{"ManualJournalID": str(uuid.uuid4())}]
    responses.get(JOURNALS, json={"ManualJournals": first})
    responses.get(JOURNALS, json={"ManualJournals": second})
    client = XeroClient(
        config=ClientConfig(base_url="https://api.xero.com"),
        auth=BearerAuth(lambda: "xat-unit"),
        tenant_id=TENANT,
    )
    with client:
        found = client.documents_paged("ManualJournals", where='Status=="POSTED"', page_size=3)
    assert found == first + second
    pages = queries(responses.calls)
    assert [(q["page"], q["pageSize"]) for q in pages] == [(["1"], ["3"]), (["2"], ["3"])]
    assert all(q["where"] == ['Status=="POSTED"'] for q in pages)


@responses.activate
def test_one_call_reads_the_documents_and_the_twins_of_their_expenses(connection):
    kept, changed, voided, gone = (booked(connection) for _ in range(4))
    twin, dead_twin = uuid.uuid4(), uuid.uuid4()
    answer = [
        journal(kept.document_id, kept.accounting_entry_id),
        journal(changed.document_id, changed.accounting_entry_id, amount=150.0, account="6200"),
        journal(voided.document_id, voided.accounting_entry_id, status="VOIDED"),
        journal(twin, kept.accounting_entry_id, status="DRAFT"),
        journal(dead_twin, changed.accounting_entry_id, status="DELETED"),
    ]  # ``gone``: Xero does not show it at all
    responses.get(JOURNALS, json={"ManualJournals": answer})
    ids = [str(b.document_id) for b in (kept, changed, voided, gone)] + ["JE-000001"]
    found = rb.xero_read_back(company=connection.company, external_ids=ids)

    assert set(found) == {str(kept.document_id), str(changed.document_id)}
    mine = found[str(kept.document_id)]
    assert (mine.summary.amount, mine.summary.currency) == (12000, "GBP")
    assert mine.summary.accounts == ("6100", "840")
    assert mine.duplicates == (str(twin),)  # a draft twin counts; a deleted one does not
    assert found[str(changed.document_id)].summary.amount == 17000
    assert found[str(changed.document_id)].duplicates == ()
    (query,) = queries(responses.calls)
    assert query["page"] == ["1"] and query["pageSize"] == ["100"]
    where = query["where"][0]
    for booking in (kept, changed, voided, gone):
        assert f'ManualJournalID==Guid("{booking.document_id}")' in where
        assert f'Narration.Contains("Pleo {booking.accounting_entry_id}")' in where


@responses.activate
def test_1000_bookings_of_three_kinds_take_one_call_per_kind_per_25(
    connection, settings, monkeypatch
):
    # 43 calls are more than the organisation's minute budget grants at once: its minute is
    # waited for (virtually), as a reconciliation of that size waits.
    settings.XERO_BUDGET_WAIT_SECONDS = 90
    waits = VirtualWaits().install(monkeypatch)
    kinds = [XeroBooking.Kind.MANUAL_JOURNAL] * 1000 + [XeroBooking.Kind.BILL] * 30
    kinds += [XeroBooking.Kind.CREDIT_NOTE] * 3
    bookings = [booked(connection, kind) for kind in kinds]
    for kind in XeroBooking.Kind:
        responses.get(f"{ACCOUNTING}/{kind}", json={kind: []})
    rb.xero_read_back(
        company=connection.company, external_ids=[str(b.document_id) for b in bookings]
    )
    paths = [urlsplit(call.request.url).path.rsplit("/", 1)[1] for call in responses.calls]
    assert paths.count("ManualJournals") == 40 and paths.count("Invoices") == 2
    assert paths.count("CreditNotes") == 1 and len(paths) == 43
    assert max(len(call.request.url) for call in responses.calls) < 8000
    assert 0 < sum(waits.waits) < 90
    spec = load("accounting")["paths"]
    for call in responses.calls:  # every parameter we send is one Xero documents for the GET
        path = "/" + urlsplit(call.request.url).path.rsplit("/", 1)[1]
        documented = {p.get("name") for p in spec[path]["get"]["parameters"] if "name" in p}
        documented |= {
            load("accounting")["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]["name"]
            for p in spec[path]["get"]["parameters"]
            if "$ref" in p
        }
        assert set(parse_qs(urlsplit(call.request.url).query)) <= documented, path


@responses.activate
def test_a_bill_and_a_credit_note_are_read_by_reference(connection):
    bill = booked(connection, XeroBooking.Kind.BILL)
    credit = booked(connection, XeroBooking.Kind.CREDIT_NOTE)
    lines = [{"LineAmount": 80.0, "TaxAmount": 20.0, "AccountCode": "6100", "Quantity": 1}]
    responses.get(
        f"{ACCOUNTING}/Invoices",
        json={
            "Invoices": [
                {
                    "InvoiceID": str(bill.document_id),
                    "Reference": bill.reference,
                    "Status": "AUTHORISED",
                    "CurrencyCode": "EUR",
                    "LineAmountTypes": "Exclusive",
                    "LineItems": lines,
                }
            ]
        },
    )
    responses.get(f"{ACCOUNTING}/CreditNotes", json={"CreditNotes": []})
    found = rb.xero_read_back(
        company=connection.company,
        external_ids=[str(bill.document_id), str(credit.document_id)],
    )
    assert list(found) == [str(bill.document_id)]  # the credit note: missing
    summary = found[str(bill.document_id)].summary
    assert (summary.amount, summary.currency, summary.accounts) == (10000, "EUR", ("6100",))
    where = queries(responses.calls)[0]["where"][0]
    assert f'Reference.Contains("Pleo {bill.accounting_entry_id}")' in where


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 503},
        {"status": 429, "headers": {"Retry-After": "1", "X-Rate-Limit-Problem": "day"}},
        {"body": requests.ConnectionError("refused")},
    ],
    ids=["503", "429-day", "unreachable"],
)
@responses.activate
def test_xero_unreachable_or_refusing_is_no_missing_document(connection, answer, monkeypatch):
    waits = VirtualWaits().install(monkeypatch)  # the retries' backoff: ~2.5 s slept otherwise
    booking = booked(connection)
    responses.get(JOURNALS, **answer)
    with pytest.raises(ReadBackUnavailable) as refused:
        rb.xero_read_back(company=connection.company, external_ids=[str(booking.document_id)])
    assert "reconcile again later" in str(refused.value)
    assert len(responses.calls) == len(waits.waits) + 1  # each retry waited for first


@responses.activate
def test_an_unusable_connection_is_said_without_a_call(connection):
    booking = booked(connection)
    XeroConnection.objects.filter(pk=connection.pk).update(
        status=XeroConnection.Status.NEEDS_REAUTHORISATION, last_error="refused"
    )
    with pytest.raises(ReadBackUnavailable):
        rb.xero_read_back(company=connection.company, external_ids=[str(booking.document_id)])
    assert len(responses.calls) == 0


@responses.activate
def test_the_organisation_is_read_once_when_its_currency_is_not_known(connection):
    XeroConnection.objects.filter(pk=connection.pk).update(base_currency="")
    booking = booked(connection)
    responses.get(f"{ACCOUNTING}/Organisation", json=organisation_body(currency="NZD"))
    responses.get(
        JOURNALS,
        json={"ManualJournals": [journal(booking.document_id, booking.accounting_entry_id)]},
    )
    found = rb.xero_read_back(company=connection.company, external_ids=[str(booking.document_id)])
    assert found[str(booking.document_id)].summary.currency == "NZD"
    assert len(responses.calls) == 2


def test_a_journal_amounts_to_its_debits_and_a_bill_to_its_lines_with_tax():
    refund = {
        "LineAmountTypes": "Exclusive",
        "JournalLines": [
            {"LineAmount": -40.0, "TaxAmount": -10.0, "AccountCode": "429"},
            {"LineAmount": 50.0, "TaxAmount": 0.0, "AccountCode": "840"},
        ],
    }
    summary = document_summary(XeroBooking.Kind.MANUAL_JOURNAL, refund, currency="DKK")
    assert (summary.amount, summary.currency, summary.accounts) == (5000, "DKK", ("429", "840"))
    planned_bill = {
        "CurrencyCode": "DKK",
        "LineAmountTypes": "Exclusive",
        "LineItems": [
            {"Quantity": 1, "UnitAmount": 12.34, "TaxAmount": 3.09, "AccountCode": "429"},
            {"Quantity": 1, "UnitAmount": 1.0, "TaxAmount": 0.0, "AccountCode": "453"},
        ],
    }
    summary = document_summary(XeroBooking.Kind.BILL, planned_bill, currency="GBP")
    assert (summary.amount, summary.currency, summary.accounts) == (1643, "DKK", ("429", "453"))
