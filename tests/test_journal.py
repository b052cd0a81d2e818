"""The built-in journal adapter: booking rules with known answers, failures, idempotency, CSV
escaping, and the admin pages (journal, CSV download, job items, company adapter select)."""

from __future__ import annotations

import copy
import csv
import io
import logging
import random
import uuid

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from exports import clock
from exports.adapters import ADAPTERS, BookingRequest, adapter_choices, get_adapter
from exports.adapters.journal import JournalAdapter, Unbookable, plan_entry
from exports.models import ExportItemRecord, ExportJob, JournalEntry, JournalLine
from exports.selectors.journal_csv import CSV_COLUMNS, csv_cell, journal_csv_write
from pleo_sandbox.data import ITEM_KINDS, CompanyProfile, generate_export_item
from tests.factories import make_company, make_job

pytestmark = pytest.mark.django_db

PUBLIC = "https://bridge.example"
JOB = uuid.UUID("0b6c3f2e-57a4-4c8e-9d0a-1e2f3a4b5c6d")
CONTRA = {"id": str(uuid.uuid4()), "name": "Pleo DKK Account", "code": "5820", "identifier": None}
BANK = {
    "bankName": "Danske Bank",
    "country": "DK",
    "accountNumber": "4440116243",
    "bankCode": "3409",
    "bic": "DABADKKK",
    "iban": "DK5000400440116243",
}
ATTENDEES = ["Freja Nielsen", "Mikkel Andersson"]


def money(currency, value):
    return {"currency": currency, "value": value}


def pair(value, currency="DKK", supplier_value=None, supplier_currency=None):
    return {
        "inSupplierCurrency": money(
            supplier_currency or currency, value if supplier_value is None else supplier_value
        ),
        "inWalletCurrency": money(currency, value),
    }


def line(net, tax, *, code="4010", name="Meals and Entertainment", tax_account="6310", **kw):
    currency = kw.get("currency", "DKK")
    return {
        "accountingEntryLineId": str(uuid.uuid4()),
        "lineAmount": pair(net + tax, currency),
        "netAmount": pair(net, currency),
        "account": {"id": str(uuid.uuid4()), "name": name, "code": code, "identifier": None}
        if code is not None
        else None,
        "tags": None,
        "tax": {
            "id": str(uuid.uuid4()),
            "rate": 0.25,
            "type": "inclusive",
            "code": "I25",
            "amount": pair(tax, currency),
            "ingoingTaxAccount": tax_account,
            "outgoingTaxAccount": "6320",
        },
    }


def item(lines, total, *, currency="DKK", **extra):
    body = {
        "_links": {
            "web": {"exportItem": "https://app.pleo.io/export/j/e"},
            "mobile": {},
            "api": {},
        },
        "accountingEntryId": str(uuid.uuid4()),
        "accountingEntryLines": lines,
        "additionalInformation": {
            "reconciliationId": "B12345678",
            "attendees": ATTENDEES,
            "invoiceInformation": {"invoiceNumber": "INV-1", "supplierBankAccount": BANK},
            "reconciledEntries": None,
        },
        "amount": pair(total, currency),
        "bookkeeping": {"method": "none"},
        "companyId": str(uuid.uuid4()),
        "contraAccount": dict(CONTRA),
        "date": "2025-05-20T00:00:00Z",
        "note": "Client lunch",
        "supplier": {"name": "Joe & The Juice"},
        "type": "card_purchase",
        "user": {"id": str(uuid.uuid4()), "name": "Anna Hansen", "code": None},
        "vendor": None,
    }
    body.update(extra)
    return body


def booked_lines(entry):
    return [
        (line.kind, line.account_code, line.debit, line.credit)
        for line in entry.lines.order_by("position")
    ]


@pytest.fixture
def journal(settings):
    settings.PUBLIC_BASE_URL = PUBLIC
    return JournalAdapter(company=make_company())


def request(body, key=None):
    return BookingRequest(item=body, idempotency_key=key or str(uuid.uuid4()), pleo_job_id=JOB)


def book(journal, body, key=None):
    return journal.book(request(body, key))


def book_one(journal, body):
    """Book ``body``, assert it was booked, and return the journal's one entry."""
    assert book(journal, body).booked
    return JournalEntry.objects.get()


# --- known answers ---------------------------------------------------------------------------


def test_purchase_books_net_per_account_tax_and_credits_the_contra_account(journal):
    body = item([line(10000, 2500), line(4000, 1000, code="4030", name="Software")], total=17500)
    result = book(journal, body)
    assert result.booked
    entry = JournalEntry.objects.get()
    assert booked_lines(entry) == [
        ("expense", "4010", 10000, 0),
        ("expense", "4030", 4000, 0),
        ("tax", "6310", 3500, 0),
        ("contra", "5820", 0, 17500),
    ]
    assert (entry.amount, entry.currency, str(entry.date)) == (17500, "DKK", "2025-05-20")
    assert entry.reconciliation_id == "B12345678"
    assert entry.pleo_links["web"]["exportItem"] == "https://app.pleo.io/export/j/e"
    assert entry.description == "Card purchase – Joe & The Juice – Client lunch"
    assert result.external_id == entry.number == f"JE-{entry.pk:06d}"
    assert result.external_url == f"{PUBLIC}/admin/exports/journalentry/{entry.pk}/change/"
    assert result.exported_at == entry.created_at


def test_refund_books_the_same_lines_with_the_sides_swapped(journal):
    body = item([line(-10000, -2500)], total=-12500, type="refund")
    entry = book_one(journal, body)
    assert booked_lines(entry) == [
        ("expense", "4010", 0, 10000),
        ("tax", "6310", 0, 2500),
        ("contra", "5820", 12500, 0),
    ]
    assert entry.amount == -12500


def test_foreign_currency_purchase_is_booked_in_the_wallet_currency(journal):
    # 100.00 USD paid from a DKK wallet: 688.13 DKK, of which 137.63 DKK input VAT.
    foreign = line(55050, 13763, code="4020", name="Travel")
    foreign["lineAmount"] = pair(68813, "DKK", 10000, "USD")
    foreign["netAmount"] = pair(55050, "DKK", 8000, "USD")
    foreign["tax"]["amount"] = pair(13763, "DKK", 2000, "USD")
    body = item([foreign], total=68813)
    body["amount"] = pair(68813, "DKK", 10000, "USD")
    entry = book_one(journal, body)
    assert booked_lines(entry) == [
        ("expense", "4020", 55050, 0),
        ("tax", "6310", 13763, 0),
        ("contra", "5820", 0, 68813),
    ]
    assert (entry.currency, entry.supplier_currency, entry.supplier_amount) == ("DKK", "USD", 10000)


def test_zero_tax_books_no_tax_line_even_without_a_tax_account(journal):
    entry = book_one(journal, item([line(5000, 0, tax_account=None)], total=5000))
    assert booked_lines(entry) == [
        ("expense", "4010", 5000, 0),
        ("contra", "5820", 0, 5000),
    ]


# --- items that fail instead of being booked wrongly -----------------------------------------


def _no_contra(body):
    body["contraAccount"] = None


def _no_account(body):
    body["accountingEntryLines"][0]["account"] = None


def _account_without_code(body):
    body["accountingEntryLines"][0]["account"] = {"id": "x", "name": "Travel", "code": None}


def _no_tax_account(body):
    body["accountingEntryLines"][0]["tax"]["ingoingTaxAccount"] = None


def _off_by_one(body):
    body["amount"]["inWalletCurrency"]["value"] += 1


def _other_currency_line(body):
    body["accountingEntryLines"][0]["netAmount"]["inWalletCurrency"]["currency"] = "EUR"


def _fraction(body):
    body["accountingEntryLines"][0]["netAmount"]["inWalletCurrency"]["value"] = 9999.5


@pytest.mark.parametrize(
    ("breaks", "failure_type", "text"),
    [
        (_no_contra, "missing_configuration", "No contra account"),
        (_no_account, "account_unknown", "has no expense account"),
        (_account_without_code, "account_unknown", "'Travel'"),
        (_no_tax_account, "tax_code_unknown", "tax code I25"),
        (_off_by_one, "validation_failure", "would not balance"),
        (_other_currency_line, "validation_failure", "not in the wallet currency"),
        (_fraction, "validation_failure", "whole amount"),
    ],
)
def test_an_item_that_cannot_be_booked_correctly_fails_and_books_nothing(
    journal, breaks, failure_type, text, django_assert_num_queries
):
    body = item([line(10000, 2500)], total=12500)
    breaks(body)
    with django_assert_num_queries(0):  # the refusal is precheck's: it reads nothing
        check = journal.precheck(request(body))
    result = book(journal, body)
    assert not result.booked
    assert result.failure_type == failure_type
    assert text in result.message
    assert check.as_result() == result
    assert not JournalEntry.objects.exists()


def test_vendor_based_job_needs_a_vendor_on_each_item(settings):
    settings.PUBLIC_BASE_URL = PUBLIC
    company = make_company()
    job = ExportJob(vendor_based_bookkeeping=True)
    adapter = JournalAdapter(company=company, job=job)
    assert adapter.validate(job).ok
    missing = adapter.book(request(item([line(100, 25)], total=125), "k1"))
    assert (missing.booked, missing.failure_type) == (False, "vendor_unknown")
    assert adapter.precheck(request(item([line(100, 25)], total=125))).as_result() == missing
    adapter.job = None
    vendor = {"id": "v", "name": "Joe & The Juice", "code": "V1001"}
    assert adapter.book(request(item([line(100, 25)], total=125, vendor=vendor), "k2")).booked
    assert JournalEntry.objects.get().vendor_code == "V1001"


@pytest.mark.parametrize("kind", ITEM_KINDS)
def test_sandbox_items_of_every_kind(kind):
    profile = CompanyProfile.generate(random.Random(7), "SEK")
    for seed in range(20):
        body = generate_export_item(
            random.Random(seed),
            profile=profile,
            company_id=str(uuid.uuid4()),
            accounting_entry_id=str(uuid.uuid4()),
            kind=kind,
            job_created_at=clock.now(),
            vendor_based_bookkeeping=False,
        )
        if kind in ("missing_account", "missing_contra"):
            with pytest.raises(Unbookable) as failed:
                plan_entry(body)
            expected = "account_unknown" if kind == "missing_account" else "missing_configuration"
            assert failed.value.result.failure_type == expected
            continue
        plan = plan_entry(body)
        total = body["amount"]["inWalletCurrency"]["value"]
        assert plan.debits == plan.credits == abs(total)
        assert {plan.currency} == {"SEK"}
        contra = [row for row in plan.lines if row.kind == "contra"]
        assert (contra[0].credit if total > 0 else contra[0].debit) == abs(total)


# --- idempotency -------------------------------------------------------------------------------


def test_export_is_idempotent_by_key_and_lookup_finds_it(journal):
    body = item([line(10000, 2500)], total=12500)
    first = book(journal, body, key="key-1")
    again = book(journal, copy.deepcopy(body), key="key-1")
    assert first == again
    assert JournalEntry.objects.count() == 1
    assert journal.lookup(idempotency_key="key-1") == first
    assert journal.lookup(idempotency_key="key-2") is None
    # The same accounting entry from a later job (its first job expired): not booked twice.
    assert book(journal, copy.deepcopy(body), key="key-2").external_id == first.external_id
    assert JournalEntry.objects.count() == 1


def test_the_registry_builds_adapters_and_lists_them_for_the_admin():
    company = make_company()
    assert isinstance(get_adapter("journal", company=company), JournalAdapter)
    assert isinstance(get_adapter("", company=company), JournalAdapter)
    assert ("journal", "journal (the local journal)") in adapter_choices()
    assert set(ADAPTERS) >= {"journal"}


# --- no bank details, no attendee names ---------------------------------------------------------


def test_bank_details_and_attendee_names_are_never_copied(journal, caplog):
    caplog.set_level(logging.DEBUG)
    body = item([line(10000, 2500)], total=12500)
    entry = book_one(journal, body)
    out = io.StringIO()
    journal_csv_write(entries=JournalEntry.objects.all(), out=out)
    stored = " ".join(
        [
            str(list(JournalEntry.objects.values().get().values())),
            str(list(JournalLine.objects.values_list())),
            out.getvalue(),
            caplog.text,
        ]
    )
    for secret in [*BANK.values(), *ATTENDEES, "Anna Hansen"]:
        if secret in ("DK", "Danske Bank"):
            continue  # a country code and a bank's name are not bank details on their own
        assert secret not in stored, secret
    assert entry.reconciliation_id == "B12345678"


# --- CSV -------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["=", "+", "-", "@"])
def test_csv_cells_that_could_be_formulas_are_escaped(start):
    assert csv_cell(f'{start}HYPERLINK("http://evil")') == f'\'{start}HYPERLINK("http://evil")'
    assert csv_cell("4010") == "4010"
    assert csv_cell(None) == ""


def test_csv_has_the_documented_columns_one_row_per_line(journal):
    hostile = line(10000, 2500, code="@SUM(1+1)", name="=cmd|' /C calc'!A0")
    body = item([hostile], total=12500, note="+Client lunch")
    body["contraAccount"]["name"] = "-Pleo DKK"
    assert book(journal, body).booked
    out = io.StringIO()
    journal_csv_write(entries=JournalEntry.objects.all(), out=out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    # The documented header, as the file's first line (a reader sees these bytes):
    assert out.getvalue().splitlines()[0] == (
        "Entry number,Date,Company,Job id,Accounting entry id,Reconciliation id,"
        "Account code,Account name,Debit,Credit,Currency,Description"
    )
    assert tuple(rows[0]) == CSV_COLUMNS
    entry = JournalEntry.objects.get()
    assert len(rows) == 1 + 3
    expense, tax, contra = rows[1:]
    assert expense[:3] == [entry.number, "2025-05-20", entry.company.name]
    assert expense[4:6] == [str(entry.accounting_entry_id), "B12345678"]
    assert expense[6:10] == ["'@SUM(1+1)", "'=cmd|' /C calc'!A0", "100.00", ""]
    assert tax[8:11] == ["25.00", "", "DKK"]
    assert contra[7:10] == ["'-Pleo DKK", "", "125.00"]
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


def test_a_line_is_a_debit_or_a_credit_never_both():
    entry = JournalEntry.objects.create(
        company=make_company(),
        accounting_entry_id=uuid.uuid4(),
        idempotency_key="k",
        date=clock.now().date(),
        currency="DKK",
        amount=1,
        created_at=clock.now(),
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        JournalLine.objects.create(
            entry=entry, position=1, kind="expense", account_code="1", debit=1, credit=1
        )


# --- admin -------------------------------------------------------------------------------------


def test_journal_admin_lists_shows_lines_and_downloads_filtered_csv(admin_client, settings):
    settings.PUBLIC_BASE_URL = PUBLIC
    first = JournalAdapter(company=make_company(name="Alpha"))
    other = JournalAdapter(company=make_company(name="Beta"))
    book(first, item([line(10000, 2500)], total=12500))
    book(other, item([line(-400, -100)], total=-500, type="refund"))
    changelist = reverse("admin:exports_journalentry_changelist")
    page = admin_client.get(changelist).content.decode()
    numbers = [entry.number for entry in JournalEntry.objects.all()]  # ids differ per database
    assert len(numbers) == 2 and all(number in page for number in numbers)
    assert "Download CSV" in page
    entry = JournalEntry.objects.get(company__name="Alpha")
    detail = admin_client.get(reverse("admin:exports_journalentry_change", args=[entry.pk]))
    assert detail.status_code == 200
    assert "5820" in detail.content.decode() and "125.00" in detail.content.decode()
    assert admin_client.get(reverse("admin:exports_journalentry_add")).status_code == 403

    url = reverse("admin:exports_journalentry_csv")
    everything = admin_client.get(url)
    assert everything["Content-Type"].startswith("text/csv")
    assert "attachment" in everything["Content-Disposition"]
    assert len(list(csv.reader(io.StringIO(everything.content.decode())))) == 1 + 3 + 3
    alpha = admin_client.get(url, {"company__id__exact": entry.company_id}).content.decode()
    rows = list(csv.reader(io.StringIO(alpha)))
    assert len(rows) == 1 + 3 and {row[2] for row in rows[1:]} == {"Alpha"}


def test_job_page_shows_its_items_with_outcomes_and_ledger_links(admin_client, settings):
    settings.PUBLIC_BASE_URL = PUBLIC
    company = make_company()
    job = make_job(company, status="completed")
    adapter = JournalAdapter(company=company, job=job)
    body = item([line(10000, 2500)], total=12500)
    result = adapter.book(request(body, "key-a"))
    ExportItemRecord.objects.create(
        export_job=job,
        accounting_entry_id=body["accountingEntryId"],
        idempotency_key="key-a",
        adapter="journal",
        state="reported",
        result="successful",
        external_id=result.external_id,
        external_url=result.external_url,
        exported_at=result.exported_at,
    )
    ExportItemRecord.objects.create(
        export_job=job,
        accounting_entry_id=uuid.uuid4(),
        idempotency_key="key-b",
        adapter="journal",
        state="reported",
        result="failed",
        failure_reason="Line 1 has no expense account.",
        failure_reason_type="account_unknown",
    )
    page = admin_client.get(reverse("admin:exports_exportjob_change", args=[job.pk]))
    html = page.content.decode()
    entry = JournalEntry.objects.get()
    link = reverse("admin:exports_journalentry_change", args=[entry.pk])
    assert f'href="{link}"' in html and entry.number in html
    assert "account_unknown" in html and "Line 1 has no expense account." in html


def test_company_admin_offers_the_registered_adapters_only(admin_client):
    company = make_company()
    url = reverse("admin:exports_company_change", args=[company.pk])
    html = admin_client.get(url).content.decode()
    assert '<select name="accounting_adapter"' in html
    assert '<option value="journal" selected>' in html
    data = {
        "name": company.name,
        "pleo_company_id": str(company.pleo_company_id),
        "active": "on",
        "credential": company.credential_id,
        "accounting_adapter": "sage",  # not registered
    }
    assert '<option value="xero">' in html  # selectable since it books
    refused = admin_client.post(url, data)
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    assert admin_client.post(url, {**data, "accounting_adapter": "journal"}).status_code == 302
