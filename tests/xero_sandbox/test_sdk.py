"""Xero's official Python SDK (``xero-python``) against the sandbox: connections, settings,
a journal batch with and without ``summarizeErrors``, a bill, an attachment, history and a
contact search all parse into the SDK's models, and a 400 becomes its
``AccountingBadRequestException``. Slow: importing the SDK costs about a second."""

from __future__ import annotations

import datetime

import pytest


@pytest.mark.slow
def test_the_official_sdk_reads_and_writes_through_the_sandbox(xero_sandbox):
    from xero_python.accounting import (
        AccountingApi,
        Contact,
        Invoice,
        Invoices,
        LineItem,
        ManualJournal,
        ManualJournalLine,
        ManualJournals,
    )
    from xero_python.api_client import ApiClient, Configuration
    from xero_python.api_client.oauth2 import OAuth2Token
    from xero_python.exceptions import AccountingBadRequestException
    from xero_python.identity import IdentityApi

    client = xero_sandbox.client
    token = OAuth2Token(client_id=client.client_id, client_secret=client.client_secret)
    api_client = ApiClient(Configuration(oauth2_token=token), pool_threads=1)
    store = {"token": xero_sandbox.tokens}
    api_client.oauth2_token_getter(lambda: store["token"])
    api_client.oauth2_token_saver(lambda new: store.update(token=new))
    accounting = AccountingApi(api_client, base_url=xero_sandbox.api_url)
    identity = IdentityApi(api_client, base_url=xero_sandbox.url)

    tenant_id = identity.get_connections()[0].tenant_id
    assert str(tenant_id) == xero_sandbox.tenant.id
    assert accounting.get_organisations(tenant_id).organisations[0].name == "Demo Company (UK)"
    assert len(accounting.get_accounts(tenant_id).accounts) > 10

    def line(amount, code):
        return ManualJournalLine(line_amount=amount, account_code=code)

    good = ManualJournal(
        narration="sdk",
        date=datetime.date(2026, 11, 30),
        journal_lines=[line(10, "400"), line(-10, "800")],
    )
    created = accounting.create_manual_journals(
        tenant_id,
        ManualJournals(manual_journals=[good]),
        summarize_errors=False,
        idempotency_key="k1",
    ).manual_journals[0]
    assert created.date == datetime.date(2026, 11, 30) and created.status == "DRAFT"
    bad = ManualJournal(narration="sdk", journal_lines=[line(10, "999"), line(-10, "800")])
    refused = accounting.create_manual_journals(
        tenant_id, ManualJournals(manual_journals=[bad]), summarize_errors=False
    ).manual_journals[0]
    assert "'999' is not a valid code" in refused.validation_errors[0].message
    with pytest.raises(AccountingBadRequestException):
        accounting.create_manual_journals(tenant_id, ManualJournals(manual_journals=[bad]))

    bill = Invoice(
        type="ACCPAY",
        contact=Contact(name="SDK Supplier"),
        date=datetime.date(2026, 11, 30),
        line_items=[LineItem(description="x", unit_amount=100, account_code="453")],
    )
    assert accounting.create_invoices(tenant_id, Invoices(invoices=[bill])).invoices[0].total == 120
    attached = accounting.create_manual_journal_attachment_by_file_name(
        tenant_id, created.manual_journal_id, "r.pdf", b"%PDF"
    )
    assert attached.attachments[0].content_length == 4
    history = accounting.get_manual_journals_history(tenant_id, created.manual_journal_id)
    assert history.history_records[0].changes == "Created"
    assert accounting.get_contacts(tenant_id, search_term="sdk").contacts[0].name == "SDK Supplier"
