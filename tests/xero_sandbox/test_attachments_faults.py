"""Attachments (raw body by file name, size and count limits), faults, the HTTP control API and
the request log (never a token)."""

from __future__ import annotations

import json

import pytest
import requests

from tests.xero_sandbox.openapi import API
from tests.xero_sandbox.test_documents import MJ, journal


@pytest.fixture
def journal_id(xero_call):
    return xero_call("PUT", MJ, json=journal()).json()["ManualJournals"][0]["ManualJournalID"]


def upload(
    xero_call, doc_id, name, content=b"%PDF-1.4 receipt", method="PUT", kind="ManualJournals"
):
    return xero_call(
        method,
        f"{API}/{kind}/{doc_id}/Attachments/{name}",
        data=content,
        headers={"Content-Type": "application/pdf"},
    )


def test_attachments_upload_list_download_and_replace(xero_sandbox, xero_call, journal_id):
    answer = upload(xero_call, journal_id, "receipt-1.pdf")
    assert answer.status_code == 200, answer.text
    att = answer.json()["Attachments"][0]
    assert (att["FileName"], att["MimeType"], att["ContentLength"]) == (
        "receipt-1.pdf",
        "application/pdf",
        16,
    )
    assert att["Url"].endswith(f"/ManualJournals/{journal_id}/Attachments/receipt-1.pdf")
    replaced = upload(xero_call, journal_id, "receipt-1.pdf", b"new bytes", method="POST")
    assert replaced.json()["Attachments"][0]["AttachmentID"] == att["AttachmentID"]
    listed = xero_call("GET", f"{MJ}/{journal_id}/Attachments").json()["Attachments"]
    assert [a["ContentLength"] for a in listed] == [9]
    content = xero_call("GET", f"{MJ}/{journal_id}/Attachments/receipt-1.pdf", validate=False)
    assert content.content == b"new bytes"
    assert xero_call("GET", f"{MJ}/{journal_id}").json()["ManualJournals"][0]["HasAttachments"]


def test_attachment_count_and_size_limits(xero_sandbox, xero_call, journal_id):
    state = xero_sandbox.state
    for n in range(10):
        assert upload(xero_call, journal_id, f"r{n}.pdf").status_code == 200
    eleventh = upload(xero_call, journal_id, "r10.pdf")
    assert eleventh.status_code == 400 and "at most 10 attachments" in eleventh.json()["Message"]
    state.set_switches(attachment_max_bytes=1024)
    bill = {
        "Type": "ACCPAY",
        "Contact": {"Name": "A"},
        "LineItems": [{"Description": "x", "UnitAmount": 1, "AccountCode": "400"}],
    }
    invoice = xero_call("PUT", f"{API}/Invoices", json=bill).json()["Invoices"][0]["InvoiceID"]
    too_big = upload(xero_call, invoice, "big.pdf", b"x" * 1025, kind="Invoices")
    assert too_big.status_code == 413
    assert upload(xero_call, invoice, "ok.pdf", b"x" * 1024, kind="Invoices").status_code == 200
    unknown = upload(xero_call, "00000000-0000-0000-0000-000000000000", "a.pdf")
    assert unknown.status_code == 404


def test_faults_status_rate_limit_and_apply_then_drop(xero_sandbox, xero_call):
    state = xero_sandbox.state
    state.add_fault("status", "GET", f"{API}/Accounts", status=503)
    failed = xero_call("GET", f"{API}/Accounts", validate=False)
    assert failed.status_code == 503 and failed.json()["Status"] == 503
    state.add_fault("rate_limit", "GET", f"{API}/Accounts", retry_after=7)
    limited = xero_call("GET", f"{API}/Accounts", validate=False)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    state.add_fault("apply_then_drop", "PUT", MJ)
    with pytest.raises(requests.ConnectionError):
        xero_call("PUT", MJ, json=journal())
    assert len(state.documents(xero_sandbox.tenant.id)) == 1  # applied, answer lost
    with pytest.raises(ValueError):
        state.add_fault("other_integration_starts")


def test_control_api_over_http(xero_sandbox, xero_call):
    base = f"{xero_sandbox.url}/_sandbox"
    tenant_id = xero_sandbox.tenant.id
    assert requests.get(f"{base}/health", timeout=5).json()["ok"] is True
    tenants = requests.get(f"{base}/tenants", timeout=5).json()["data"]
    assert tenant_id in {t["tenantId"] for t in tenants}
    lock = requests.put(
        f"{base}/tenants/{tenant_id}/lock-dates", json={"periodLockDate": "2026-10-31"}, timeout=5
    )
    assert lock.json()["data"]["PeriodLockDate"].startswith("/Date(")
    made = requests.post(
        f"{base}/tenants/{tenant_id}/accounts",
        json={
            "code": "841",
            "name": "Pleo Clearing 2",
            "type": "CURRLIAB",
            "accountClass": "LIABILITY",
        },
        timeout=5,
    )
    assert made.status_code == 201
    off = requests.patch(
        f"{base}/tenants/{tenant_id}/accounts/841", json={"status": "ARCHIVED"}, timeout=5
    )
    assert off.json()["data"]["Status"] == "ARCHIVED"
    tax = requests.post(
        f"{base}/tenants/{tenant_id}/tax-rates",
        json={"taxType": "TAX001", "name": "Custom 12%", "rate": 12},
        timeout=5,
    )
    assert tax.status_code == 201
    assert xero_call("GET", f"{API}/TaxRates/TAX001").status_code == 200
    requests.patch(
        f"{base}/tenants/{tenant_id}/tax-rates/TAX001", json={"status": "DELETED"}, timeout=5
    )
    mj = xero_call("PUT", MJ, json=journal("after lock", Status="POSTED")).json()
    doc_id = mj["ManualJournals"][0]["ManualJournalID"]
    deleted = requests.patch(
        f"{base}/tenants/{tenant_id}/documents/{doc_id}", json={"status": "DELETED"}, timeout=5
    )
    assert deleted.json()["data"]["Status"] == "DELETED"
    clock = requests.post(f"{base}/clock/advance", json={"seconds": 10}, timeout=5).json()
    assert clock["offsetSeconds"] == 10
    switches = requests.patch(f"{base}/switches", json={"minuteLimit": 2}, timeout=5).json()
    assert switches["data"]["minute_limit"] == 2
    assert requests.patch(f"{base}/switches", json={"nope": 1}, timeout=5).status_code == 400
    fault = requests.post(f"{base}/faults", json={"kind": "status", "status": 500}, timeout=5)
    assert fault.status_code == 201
    assert requests.delete(f"{base}/faults", timeout=5).status_code == 204
    connection = requests.get(f"{base}/connections", timeout=5).json()["data"][0]
    assert requests.delete(f"{base}/connections/{connection['id']}", timeout=5).status_code == 204
    assert requests.get(f"{base}/nothing", timeout=5).status_code == 404


def test_the_request_log_never_holds_a_token(xero_sandbox, xero_call):
    xero_call("GET", f"{API}/Organisation")
    upload(
        xero_call,
        xero_call("PUT", MJ, json=journal()).json()["ManualJournals"][0]["ManualJournalID"],
        "r.pdf",
    )
    entries = xero_sandbox.state.requests()
    text = json.dumps(entries, default=str)
    assert xero_sandbox.tokens["access_token"] not in text
    assert xero_sandbox.tokens["refresh_token"] not in text
    assert entries[0]["headers"]["Authorization"] == "<redacted>"
    assert entries[0]["identity"].startswith("token:")
    assert entries[-1]["body"] == "<16 bytes>"
    assert entries[0]["tenantId"] == xero_sandbox.tenant.id


def test_stall_then_a_late_answer_or_none(xero_sandbox, xero_call):
    state = xero_sandbox.state
    state.add_fault("stall", "PUT", MJ, seconds=0.2)
    with pytest.raises(requests.ConnectionError):
        xero_call("PUT", MJ, json=journal("dropped"))
    assert state.documents(xero_sandbox.tenant.id) == []  # nothing applied
    state.add_fault("stall", "PUT", MJ, seconds=0.2, apply=True)
    late = xero_call("PUT", MJ, json=journal("late"))
    assert late.status_code == 200
    outcomes = [e["outcome"] for e in state.requests(method="PUT")]
    assert outcomes == ["dropped", "late_answer"]
