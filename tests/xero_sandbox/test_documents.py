"""Manual journals, bills, credit notes and contacts: Xero's rules, batches with and without
``summarizeErrors``, ``Idempotency-Key``, updates and the answers' shapes (checked against the
spec by ``xero_call``)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from tests.xero_sandbox.openapi import API

NOV_30 = f"/Date({int(datetime(2026, 11, 30, tzinfo=UTC).timestamp() * 1000)}+0000)/"

MJ = f"{API}/ManualJournals"


def journal(narration="Pleo export 1", amount=100, debit="400", credit="800", **extra) -> dict:
    return {
        "Narration": narration,
        "Date": "2026-11-30",
        "JournalLines": [
            {"LineAmount": amount, "AccountCode": debit, "Description": "Card spend"},
            {"LineAmount": -amount, "AccountCode": credit, "Description": "Card spend"},
        ],
        **extra,
    }


def messages(element: dict) -> list[str]:
    return [e["Message"] for e in element.get("ValidationErrors", [])]


def test_a_balanced_journal_is_booked_and_read_back(xero_sandbox, xero_call):
    created = xero_call("PUT", MJ, json={"ManualJournals": [journal(Status="POSTED")]})
    assert created.status_code == 200, created.text
    mj = created.json()["ManualJournals"][0]
    assert mj["Status"] == "POSTED" and mj["Date"] == NOV_30
    assert [line["LineAmount"] for line in mj["JournalLines"]] == [100.0, -100.0]
    got = xero_call("GET", f"{MJ}/{mj['ManualJournalID']}").json()["ManualJournals"]
    assert got[0]["ManualJournalID"] == mj["ManualJournalID"]
    listed = xero_call("GET", MJ, params={"page": 1}).json()
    assert listed["pagination"]["itemCount"] == 1
    history = xero_call("GET", f"{MJ}/{mj['ManualJournalID']}/History").json()
    assert history["HistoryRecords"][0]["Changes"] == "Created"


def test_rules_unbalanced_unknown_or_inactive_account_and_tax_type(xero_sandbox, xero_call):
    state, tenant = xero_sandbox.state, xero_sandbox.tenant
    state.set_account_status(tenant.id, "404", "ARCHIVED")
    state.set_tax_rate_status(tenant.id, "RRINPUT", "DELETED")
    bad = [
        journal("unbalanced", amount=100)
        | {
            "JournalLines": [
                {"LineAmount": 100, "AccountCode": "400"},
                {"LineAmount": -90, "AccountCode": "800"},
            ]
        },
        journal("unknown account", debit="999"),
        journal("archived account", debit="404"),
        journal("tax")
        | {
            "JournalLines": [
                {"LineAmount": 10, "AccountCode": "400", "TaxType": "RRINPUT"},
                {"LineAmount": -10, "AccountCode": "800", "TaxType": "NOPE"},
            ]
        },
        {"Narration": "one line", "JournalLines": [{"LineAmount": 0, "AccountCode": "400"}]},
    ]
    answer = xero_call("PUT", MJ, json={"ManualJournals": bad})
    assert answer.status_code == 400
    body = answer.json()
    assert body["Type"] == "ValidationException" and body["ErrorNumber"] == 10
    found = [messages(e) for e in body["Elements"]]
    assert "The total debits (100.00) must equal total credits (-90.00)" in found[0]
    assert any("'999' is not a valid code" in m for m in found[1])
    assert any("has been archived" in m for m in found[2])
    assert any("'RRINPUT' is not active" in m for m in found[3])
    assert any("'NOPE' does not exist" in m for m in found[3])
    assert any("at least two journal lines" in m for m in found[4])
    assert state.documents(tenant.id) == []


def test_summarize_errors_false_saves_the_valid_elements(xero_sandbox, xero_call):
    batch = [journal("good"), journal("bad", debit="999")]
    answer = xero_call(
        "PUT", MJ, params={"summarizeErrors": "false"}, json={"ManualJournals": batch}
    )
    assert answer.status_code == 200
    good, bad = answer.json()["ManualJournals"]
    assert good["StatusAttributeString"] == "OK" and "ManualJournalID" in good
    assert bad["StatusAttributeString"] == "ERROR" and messages(bad)
    assert [d["Narration"] for d in xero_sandbox.state.documents(xero_sandbox.tenant.id)] == [
        "good"
    ]
    # summarizeErrors=true (the default): nothing of a failing batch is saved.
    again = xero_call(
        "PUT", MJ, json={"ManualJournals": [journal("also good"), journal("x", debit="999")]}
    )
    assert again.status_code == 400
    assert len(xero_sandbox.state.documents(xero_sandbox.tenant.id)) == 1


def test_lock_dates_refuse_postings_on_or_before_them(xero_sandbox, xero_call):
    state, tenant = xero_sandbox.state, xero_sandbox.tenant
    state.set_lock_dates(tenant.id, period="2026-11-30", end_of_year=date(2025, 12, 31))
    org = xero_call("GET", f"{API}/Organisation").json()["Organisations"][0]
    assert org["PeriodLockDate"] == NOV_30
    on = xero_call("PUT", MJ, json={"ManualJournals": [journal(Status="POSTED")]})
    assert on.status_code == 400
    assert "lock date (30 Nov 2026)" in messages(on.json()["Elements"][0])[0]
    draft = xero_call("PUT", MJ, json={"ManualJournals": [journal()]})
    assert draft.status_code == 200  # drafts do not post (switch lock_date_applies_to_drafts)
    after = journal(Status="POSTED") | {"Date": "2026-12-01"}
    assert xero_call("PUT", MJ, json={"ManualJournals": [after]}).status_code == 200
    state.set_switches(lock_date_applies_to_drafts=True)
    assert xero_call("PUT", MJ, json={"ManualJournals": [journal()]}).status_code == 400


def test_idempotency_key_replays_and_refuses_another_body(xero_sandbox, xero_call):
    key = {"Idempotency-Key": "export-item-42"}
    first = xero_call("PUT", MJ, headers=key, json={"ManualJournals": [journal()]})
    second = xero_call("PUT", MJ, headers=key, json={"ManualJournals": [journal()]})
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert len(xero_sandbox.state.documents(xero_sandbox.tenant.id)) == 1
    other = xero_call("PUT", MJ, headers=key, json={"ManualJournals": [journal("other")]})
    assert other.status_code == 400 and "different request body" in other.json()["Message"]
    too_long = xero_call("PUT", MJ, headers={"Idempotency-Key": "k" * 129}, json=journal())
    assert too_long.status_code == 400


def test_post_updates_and_status_changes(xero_sandbox, xero_call):
    mj = xero_call("PUT", MJ, json=journal()).json()["ManualJournals"][0]
    url = f"{MJ}/{mj['ManualJournalID']}"
    posted = xero_call("POST", url, json={"ManualJournals": [{"Status": "POSTED"}]})
    assert posted.json()["ManualJournals"][0]["Status"] == "POSTED"
    edit = xero_call("POST", url, json={"Narration": "changed", "Status": "POSTED"})
    assert edit.status_code == 400  # a posted journal can only be voided
    state, tenant = xero_sandbox.state, xero_sandbox.tenant
    state.set_account_status(tenant.id, "400", "ARCHIVED")  # a void re-checks no line
    state.set_lock_dates(tenant.id, period="2026-11-30")
    locked = xero_call("POST", url, json={"Status": "VOIDED"})
    assert locked.status_code == 400 and "lock date" in str(locked.json())
    state.set_lock_dates(tenant.id, period=None)
    voided = xero_call("POST", url, json={"Status": "VOIDED"})
    assert voided.json()["ManualJournals"][0]["Status"] == "VOIDED"
    put_with_id = xero_call("PUT", MJ, json=journal() | {"ManualJournalID": mj["ManualJournalID"]})
    assert put_with_id.status_code == 400


def test_bills_and_credit_notes_with_contacts_by_name(xero_sandbox, xero_call):
    bill = {
        "Type": "ACCPAY",
        "Contact": {"Name": "Office Supplies A/S"},
        "Date": "2026-11-30",
        "DueDate": "2026-12-14",
        "LineAmountTypes": "Inclusive",
        "Status": "AUTHORISED",
        "InvoiceNumber": "INV-7",
        "LineItems": [
            {
                "Description": "Paper",
                "Quantity": 1,
                "UnitAmount": 120,
                "AccountCode": "453",
                "TaxType": "INPUT2",
                "Tracking": [{"Name": "Department", "Option": "Sales"}],
            }
        ],
    }
    answer = xero_call("PUT", f"{API}/Invoices", json={"Invoices": [bill]})
    assert answer.status_code == 200, answer.text
    invoice = answer.json()["Invoices"][0]
    assert (invoice["SubTotal"], invoice["TotalTax"], invoice["Total"]) == (100.0, 20.0, 120.0)
    assert invoice["LineItems"][0]["Tracking"][0]["TrackingOptionID"]
    contact_id = invoice["Contact"]["ContactID"]
    credit = {
        "Type": "ACCPAYCREDIT",
        "Contact": {"ContactID": contact_id},
        "Date": "2026-11-30",
        "LineItems": [
            {"Description": "Refund", "UnitAmount": 50, "AccountCode": "453", "TaxType": "INPUT2"}
        ],
    }
    note = xero_call("PUT", f"{API}/CreditNotes", json={"CreditNotes": [credit]})
    assert note.status_code == 200, note.text
    assert note.json()["CreditNotes"][0]["Total"] == 60.0  # Exclusive by default
    no_contact = xero_call("PUT", f"{API}/Invoices", json={"Invoices": [bill | {"Contact": {}}]})
    assert no_contact.status_code == 400
    wrong_type = xero_call("PUT", f"{API}/CreditNotes", json=credit | {"Type": "ACCPAY"})
    assert wrong_type.status_code == 400
    found = xero_call("GET", f"{API}/Contacts", params={"searchTerm": "office"}).json()
    assert [c["ContactID"] for c in found["Contacts"]] == [contact_id]
    listed = xero_call("GET", f"{API}/Invoices", params={"Statuses": "AUTHORISED"}).json()
    assert len(listed["Invoices"]) == 1
    by_contact = f'Contact.ContactID==Guid("{contact_id}") AND Type=="ACCPAY"'
    assert (
        len(xero_call("GET", f"{API}/Invoices", params={"where": by_contact}).json()["Invoices"])
        == 1
    )
    suppliers = xero_call("GET", f"{API}/Contacts", params={"where": "IsSupplier==true"}).json()
    assert [c["ContactID"] for c in suppliers["Contacts"]] == [contact_id]
    note_id = note.json()["CreditNotes"][0]["CreditNoteID"]
    for path in (
        f"{API}/Invoices/{invoice['InvoiceID']}",
        f"{API}/Invoices/{invoice['InvoiceID']}/History",
        f"{API}/CreditNotes",
        f"{API}/CreditNotes/{note_id}",
        f"{API}/CreditNotes/{note_id}/Attachments",
    ):
        assert xero_call("GET", path).status_code == 200, path  # each checked against the spec
    voided = xero_call("POST", f"{API}/Invoices/{invoice['InvoiceID']}", json={"Status": "VOIDED"})
    assert voided.json()["Invoices"][0]["Status"] == "VOIDED"


def test_contacts_create_update_unique_names_and_where(xero_sandbox, xero_call):
    url = f"{API}/Contacts"
    made = xero_call("PUT", url, json={"Contacts": [{"Name": "Nordic Taxi"}]})
    assert made.status_code == 200
    contact = made.json()["Contacts"][0]
    dupe = xero_call(
        "PUT",
        url,
        params={"summarizeErrors": "false"},
        json={"Contacts": [{"Name": "nordic taxi"}]},
    )
    assert dupe.status_code == 200 and dupe.json()["Contacts"][0]["HasValidationErrors"] is True
    renamed = xero_call("POST", f"{url}/{contact['ContactID']}", json={"Name": "Nordic Taxi ApS"})
    assert renamed.json()["Contacts"][0]["Name"] == "Nordic Taxi ApS"
    where = xero_call("GET", url, params={"where": 'Name=="Nordic Taxi ApS"'}).json()
    assert [c["ContactID"] for c in where["Contacts"]] == [contact["ContactID"]]
    assert xero_call("GET", f"{url}/{contact['ContactID']}").status_code == 200


def test_control_voids_and_deletes_documents(xero_sandbox, xero_call):
    mj = xero_call("PUT", MJ, json=journal(Status="POSTED")).json()["ManualJournals"][0]
    state = xero_sandbox.state
    state.set_document_status(xero_sandbox.tenant.id, mj["ManualJournalID"], "VOIDED")
    got = xero_call("GET", f"{MJ}/{mj['ManualJournalID']}").json()["ManualJournals"][0]
    assert got["Status"] == "VOIDED"
    history = xero_call("GET", f"{MJ}/{mj['ManualJournalID']}/History").json()["HistoryRecords"]
    assert history[-1]["Changes"] == "Voided"
    note = xero_call(
        "PUT",
        f"{MJ}/{mj['ManualJournalID']}/History",
        json={"HistoryRecords": [{"Details": "Booked by pleo-export-bridge"}]},
    )
    assert note.status_code == 200
