"""``where`` with ``OR`` and ``Contains``/``StartsWith``/``EndsWith`` (what the reconciliation
asks: a document by id or by the text it carries), paged, and the control that edits a document
as a person in Xero would (its status kept, its rules applied), over Python and HTTP; every
answer checked against the spec by ``xero_call``."""

from __future__ import annotations

import pytest
import requests

from tests.xero_sandbox.openapi import API
from tests.xero_sandbox.test_documents import MJ, journal


def book(xero_call, *narrations, status="POSTED") -> list[dict]:
    body = {"ManualJournals": [journal(n, Status=status) for n in narrations]}
    answer = xero_call("PUT", MJ, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["ManualJournals"]


def ids(answer) -> set[str]:
    return {j["ManualJournalID"] for j in answer.json()["ManualJournals"]}


def test_or_of_ids_and_contains_paged(xero_sandbox, xero_call):
    first, second, third = book(
        xero_call, 'Pleo aaa (export job 1) "quoted"', "Pleo bbb (export job 1)", "Other"
    )
    where = (
        f'ManualJournalID==Guid("{first["ManualJournalID"]}") OR '
        'Narration.Contains("pleo BBB")'  # case is ignored, as Xero does
    )
    answer = xero_call("GET", MJ, params={"where": where, "page": 1, "pageSize": 100})
    assert ids(answer) == {first["ManualJournalID"], second["ManualJournalID"]}
    assert answer.json()["pagination"]["itemCount"] == 2
    quoted = xero_call("GET", MJ, params={"where": r'Narration.Contains("\"quoted\"")'})
    assert ids(quoted) == {first["ManualJournalID"]}
    both = 'Narration.StartsWith("Pleo") && Narration.EndsWith("job 1)") || Narration=="Other"'
    assert ids(xero_call("GET", MJ, params={"where": both})) == {
        second["ManualJournalID"],
        third["ManualJournalID"],
    }
    # " OR " inside quoted text is text, not a join
    assert ids(xero_call("GET", MJ, params={"where": 'Narration=="a OR b"'})) == set()


@pytest.mark.parametrize(
    "where", ['(Narration=="x") OR Status=="POSTED"', "Narration.Contains(x)", 'Narration>"a"']
)
def test_what_the_sandbox_cannot_read_is_a_400(xero_sandbox, xero_call, where):
    book(xero_call, "One")
    assert xero_call("GET", MJ, params={"where": where}).status_code == 400


def test_edit_control_changes_a_posted_journal_and_a_bill_keeping_their_rules(
    xero_sandbox, xero_call
):
    (mj,) = book(xero_call, "Pleo ccc")
    state, tenant = xero_sandbox.state, xero_sandbox.tenant
    lines = [
        {"LineAmount": 150, "AccountCode": "400"},
        {"LineAmount": -150, "AccountCode": "800"},
    ]
    edited = state.edit_document(tenant.id, mj["ManualJournalID"], JournalLines=lines)
    assert edited["Status"] == "POSTED"
    got = xero_call("GET", f"{MJ}/{mj['ManualJournalID']}").json()["ManualJournals"][0]
    assert [line["LineAmount"] for line in got["JournalLines"]] == [150.0, -150.0]
    history = xero_call("GET", f"{MJ}/{mj['ManualJournalID']}/History").json()
    assert history["HistoryRecords"][-1]["Changes"] == "Edited"
    with pytest.raises(ValueError, match="total debits"):
        state.edit_document(tenant.id, mj["ManualJournalID"], JournalLines=lines[:1] * 2)

    bill = {
        "Type": "ACCPAY",
        "Contact": {"Name": "Nordic Taxi ApS"},
        "Status": "AUTHORISED",
        "Reference": "Pleo ddd",
        "LineItems": [{"UnitAmount": 80, "AccountCode": "400", "TaxType": "NONE"}],
    }
    invoice = xero_call("PUT", f"{API}/Invoices", json={"Invoices": [bill]}).json()["Invoices"][0]
    url = f"{xero_sandbox.url}/_sandbox/tenants/{tenant.id}/documents/{invoice['InvoiceID']}"
    changed = requests.post(
        url,
        json={"LineItems": [{"UnitAmount": 95, "AccountCode": "400", "TaxType": "NONE"}]},
        timeout=5,
    )
    assert changed.status_code == 200, changed.text
    got = xero_call("GET", f"{API}/Invoices/{invoice['InvoiceID']}").json()["Invoices"][0]
    assert (got["Total"], got["Status"]) == (95.0, "AUTHORISED")
    state.set_document_status(tenant.id, invoice["InvoiceID"], "VOIDED")
    refused = requests.post(url, json={"Reference": "again"}, timeout=5)
    assert refused.status_code == 400
    unknown = requests.post(url.rsplit("/", 1)[0] + "/nope", json={}, timeout=5)
    assert unknown.status_code == 404
