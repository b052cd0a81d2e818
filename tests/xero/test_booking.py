"""Booking in Xero end to end: the Pleo sandbox's jobs carried by the lifecycle into the local
Xero (``xero_sandbox``), both over real HTTP. Journals and bills, lock-date policies, a batch with
one element Xero refuses, a crash between Xero's answer and our record, re-exports, a receipt
that cannot be attached, Xero's 429s and a connection revoked mid-job."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from exports import clock, crypto
from exports.models import (
    AuditEntry,
    Company,
    ExportItemRecord,
    XeroBooking,
    XeroConnection,
    XeroMapping,
)
from exports.services import xero_mapping
from exports.services.start_flow import Outcome
from exports.services.xero_sync import xero_sync_run
from exports.xero.models import BookingMethod, LockDatePolicy, PleoCodeKind
from exports.xero.resources import xero_date
from tests import secrets_registry
from tests.reliability.inprocess import SimulatedCrash, crash_at
from tests.test_lifecycle import env  # noqa: F401 - the lifecycle tests' sandbox company
from tests.xero.support import VirtualWaits

pytestmark = pytest.mark.django_db

ORGANISATION = "Nordlys ApS"  # DKK, as the Pleo sandbox company "Sandbox Acme"
EXPENSE, OTHER_EXPENSE, CLEARING, TAX, TRACKING = "429", "453", "840", "INPUT", "Department/Sales"


class Booked:
    """The Pleo sandbox company (``env``) connected to the local Xero's DKK organisation."""

    def __init__(self, env, xero, connection):  # noqa: F811
        self.env, self.xero, self.connection = env, xero, connection
        self.tenant = xero.state.tenant_by_name(ORGANISATION)

    def job(self, items, **kw) -> str:
        job_id = self.env.job(items, **kw)
        self.map_codes(job_id)
        return job_id

    def map_codes(self, job_id, **special) -> None:
        """Every Pleo code of the job's items mapped (``special``: Pleo account code → Xero)."""
        for item in self.env.state.export_items(job_id):
            for code in xero_mapping.pleo_codes_of_item(item=item):
                target = {
                    PleoCodeKind.ACCOUNT: special.get(code.code, EXPENSE),
                    PleoCodeKind.CONTRA_ACCOUNT: CLEARING,
                    PleoCodeKind.TAX_CODE: TAX,
                    PleoCodeKind.TAG: TRACKING,
                }.get(code.kind)
                if target:
                    XeroMapping.objects.update_or_create(
                        company=self.env.company,
                        kind=code.kind,
                        pleo_code=code.code,
                        defaults={"xero_code": target},
                    )

    def run(self):
        return self.env.run()

    def documents(self, kind="ManualJournals") -> list[dict]:
        return self.xero.state.documents(self.tenant.id, kind)

    def writes(self) -> list[dict]:
        return [
            r
            for r in self.xero.state.requests()
            if r["method"] in ("PUT", "POST") and "/api.xro/" in r["path"]
        ]

    def configure(self, **fields) -> None:
        XeroConnection.objects.filter(pk=self.connection.pk).update(**fields)

    def run_revoked_after_validation(self, monkeypatch, revoke, job_id: str):
        """One run in which ``revoke()`` (at Xero) follows the job's validation: the job waits
        with its items pending and nothing booked; the connection needs re-authorisation."""
        from exports.adapters.xero import XeroAdapter

        validate = XeroAdapter.validate

        def validate_then_revoke(adapter, job):
            result = validate(adapter, job)
            revoke()
            return result

        with monkeypatch.context() as patch:
            patch.setattr(XeroAdapter, "validate", validate_then_revoke)
            result = self.run()
        assert {i["status"] for i in self.env.items(job_id).values()} == {"pending"}
        assert self.documents() == []
        self.connection.refresh_from_db()
        assert self.connection.status == XeroConnection.Status.NEEDS_REAUTHORISATION
        return result


@pytest.fixture
def bx(env, xero_sandbox, settings, fresh_budget, monkeypatch):  # noqa: F811
    # The local Xero's tenant ids are the same in every test, and so are its budget keys: the
    # database budget (rolled back with each test) keeps one test's calls out of the next's,
    # also when REDIS_URL is set.
    settings.PLEO_RATE_LIMIT_BACKEND = "database"
    # Our minute budget's real pace (a burst of 5, then one call every 1.2 s) is kept, but its
    # waits move our budgets' clock and the local Xero's instead of sleeping
    # (``VirtualWaits``; a test that needs Retry-After virtual too widens it: ``bx.waits``).
    waits = VirtualWaits(xero_sandbox.state).install(monkeypatch, retry_after=False)
    client = xero_sandbox.client
    secrets_registry.register(client.client_secret)
    settings.XERO_CLIENT_ID = client.client_id
    settings.XERO_CLIENT_SECRET = client.client_secret
    for name in ("XERO_API_BASE_URL", "XERO_IDENTITY_BASE_URL", "XERO_LOGIN_BASE_URL"):
        setattr(settings, name, xero_sandbox.url)
    settings.XERO_ALLOW_LOOPBACK = True
    settings.XERO_BUDGET_WAIT_SECONDS = 5
    tokens = xero_sandbox.tokens
    tenant = xero_sandbox.state.tenant_by_name(ORGANISATION)
    connection = XeroConnection.objects.create(
        company=env.company,
        tenant_id=uuid.UUID(tenant.id),
        tenant_name=ORGANISATION,
        connection_id=uuid.UUID(
            next(c["id"] for c in xero_sandbox.state.connections() if c["tenantId"] == tenant.id)
        ),
        scopes_granted=tokens["scope"],
        base_currency="DKK",
        access_token_ciphertext=crypto.encrypt(secrets_registry.register(tokens["access_token"])),
        refresh_token_ciphertext=crypto.encrypt(secrets_registry.register(tokens["refresh_token"])),
        access_token_expires_at=clock.now() + timedelta(seconds=1500),
    )
    assert xero_sync_run(connection=connection).ok
    Company.objects.filter(pk=env.company.pk).update(accounting_adapter="xero")
    booked = Booked(env, xero_sandbox, connection)
    booked.waits = waits
    return booked


def test_a_journal_job_is_booked_once_in_one_batch_with_its_receipts(bx):
    job_id = bx.job({"normal": 3, "refund": 1})
    assert bx.run().outcome == Outcome.COMPLETED
    journals = {j["ManualJournalID"]: j for j in bx.documents()}
    assert len(journals) == 4
    puts = [w for w in bx.writes() if w["path"].endswith("/ManualJournals")]
    assert len(puts) == 1  # one request for the four documents
    assert all(w["headers"].get("Idempotency-Key") for w in bx.writes())
    for item in bx.env.pleo(job_id)["items"]:
        assert item["status"] == "successful"
        journal = journals[item["externalId"]]
        assert item["accountingEntryId"] in journal["Narration"] and job_id in journal["Narration"]
        assert item["externalUrl"].startswith("https://go.xero.com/Journal/View.aspx?")
        assert journal["Status"] == "DRAFT"
        clearing = [line for line in journal["JournalLines"] if line["AccountCode"] == CLEARING]
        amount = item_amount(bx, job_id, item["accountingEntryId"])
        assert clearing[0]["LineAmount"] == -amount  # a refund's sides reversed
        record = ExportItemRecord.objects.get(accounting_entry_id=item["accountingEntryId"])
        attached = bx.xero.state.attachments(bx.tenant.id, item["externalId"])
        assert len(attached) == record.receipts.count()
    assert sum(len(bx.xero.state.attachments(bx.tenant.id, i)) for i in journals) > 0


def item_amount(bx, job_id, entry_id) -> float:
    item = next(i for i in bx.env.state.export_items(job_id) if i["accountingEntryId"] == entry_id)
    return item["amount"]["inWalletCurrency"]["value"] / 100


def test_bills_and_credit_notes_against_a_supplier_contact_posted(bx):
    bx.configure(default_method=BookingMethod.ACCOUNTS_PAYABLE, document_status="posted")
    job_id = bx.job({"normal": 1, "refund": 1})
    assert bx.run().outcome == Outcome.COMPLETED
    (bill,) = bx.documents("Invoices")
    (credit,) = bx.documents("CreditNotes")
    assert (bill["Type"], bill["Status"]) == ("ACCPAY", "AUTHORISED")
    assert (credit["Type"], credit["Status"]) == ("ACCPAYCREDIT", "AUTHORISED")
    assert job_id in bill["Reference"] and bill["Contact"]["ContactID"]
    items = bx.env.items(job_id)
    assert {i["externalId"] for i in items.values()} == {bill["InvoiceID"], credit["CreditNoteID"]}
    assert credit["Total"] > 0 and bill["Total"] > 0


def test_lock_date_fails_the_item_or_books_on_the_first_open_date(bx):
    lock = date.today() + timedelta(days=400)  # after every sandbox item's date
    bx.xero.state.set_lock_dates(bx.tenant.id, period=lock.isoformat())
    failed_job = bx.job({"normal": 1})
    assert bx.run().outcome == Outcome.FAILED_JOB
    (item,) = bx.env.items(failed_job).values()
    assert item["failureReasonType"] == "accounting_system_validation_failure"
    assert lock.isoformat() in item["failureReason"]
    assert bx.documents() == []

    bx.configure(lock_date_policy=LockDatePolicy.NEXT_OPEN_DATE)
    moved_job = bx.job({"normal": 1})
    assert bx.run().outcome == Outcome.COMPLETED
    (journal,) = bx.documents()
    assert "booked after the lock date" in journal["Narration"]
    assert xero_date(journal["Date"]) == lock + timedelta(days=1)
    assert bx.env.items(moved_job)


def test_one_element_xero_refuses_fails_only_its_item(bx):
    job_id = bx.env.job({"normal": 4})
    first = bx.env.state.export_items(job_id)[0]
    refused_code = first["accountingEntryLines"][0]["account"]["code"]
    bx.map_codes(job_id, **{refused_code: OTHER_EXPENSE})
    # Archived at Xero after our sync: our check passes, Xero refuses the element.
    bx.xero.state.set_account_status(bx.tenant.id, OTHER_EXPENSE, "ARCHIVED")
    assert bx.run().outcome == Outcome.COMPLETED_WITH_ERRORS
    uses = {
        i["accountingEntryId"]: any(
            (line.get("account") or {}).get("code") == refused_code
            for line in i["accountingEntryLines"]
        )
        for i in bx.env.state.export_items(job_id)
    }
    for entry, item in bx.env.items(job_id).items():
        if uses[entry]:
            assert item["status"] == "failed"
            assert item["failureReasonType"] == "accounting_system_validation_failure"
            assert "Xero refused" in item["failureReason"]
        else:
            assert item["status"] == "successful"
    assert len(bx.documents()) == sum(not u for u in uses.values())


def test_a_crash_between_xeros_answer_and_our_record_books_and_reports_once(bx):
    job_id = bx.job({"normal": 2})
    with crash_at("after_adapter_call"), pytest.raises(SimulatedCrash):
        bx.run()
    assert len(bx.documents()) == 2  # Xero booked them; we never recorded its answer
    assert not XeroBooking.objects.filter(document_id__isnull=False).exists()
    Company.objects.filter(pk=bx.env.company.pk).update(lease_expires_at=clock.now())
    assert bx.run().outcome == Outcome.COMPLETED
    assert len(bx.documents()) == 2
    assert sorted(bx.env.put_ids(job_id)) == sorted(bx.env.items(job_id))  # reported once
    assert AuditEntry.objects.filter(step="item_recovered").count() == 2
    for record in ExportItemRecord.objects.filter(export_job__pleo_job_id=job_id):
        attached = bx.xero.state.attachments(bx.tenant.id, record.external_id)
        assert len(attached) == record.receipts.count()  # attached when found again
    assert sum(r.receipts.count() for r in ExportItemRecord.objects.all()) > 0


def test_a_reexport_is_reported_with_its_booking_unless_voided(bx):
    first_job = bx.job({"normal": 1})
    assert bx.run().outcome == Outcome.COMPLETED
    (entry,) = bx.env.items(first_job)
    (journal,) = bx.documents()
    again = bx.job([("normal")], accounting_entry_ids=[entry])
    assert bx.run().outcome == Outcome.COMPLETED
    assert bx.env.items(again)[entry]["externalId"] == journal["ManualJournalID"]
    assert len(bx.documents()) == 1
    note = AuditEntry.objects.get(step="item_booked_note")
    assert first_job in note.message

    bx.xero.state.set_document_status(bx.tenant.id, journal["ManualJournalID"], "VOIDED")
    third = bx.job(["normal"], accounting_entry_ids=[entry])
    assert bx.run().outcome == Outcome.COMPLETED
    assert len(bx.documents()) == 2
    assert bx.env.items(third)[entry]["externalId"] != journal["ManualJournalID"]


def test_a_receipt_that_cannot_be_attached_then_a_reexport_only_attaches(bx):
    job_id = bx.env.job({"normal": 4})
    with_files = [i for i in bx.env.state.export_items(job_id) if i["files"]]
    assert with_files
    bx.map_codes(job_id)
    bx.xero.state.add_fault(
        "status", "PUT", path_regex=r".*/Attachments/.*", status=400, count=None
    )
    bx.run()
    failed = [i for i in bx.env.items(job_id).values() if i["status"] == "failed"]
    assert {i["failureReasonType"] for i in failed} == {"receipt_upload_failure"}
    assert len(failed) == len(with_files)
    booked = len(bx.documents())
    assert booked == 4  # kept

    bx.xero.state.clear_faults()
    entries = [i["accountingEntryId"] for i in with_files]
    again = bx.job(["normal"] * len(entries), accounting_entry_ids=entries)
    assert bx.run().outcome == Outcome.COMPLETED
    assert len(bx.documents()) == booked  # nothing booked twice
    for entry, item in bx.env.items(again).items():
        assert bx.xero.state.attachments(bx.tenant.id, item["externalId"])


@pytest.mark.parametrize("problem", ["minute", "day"])
def test_xeros_429_minute_is_waited_for_and_day_pauses(bx, problem):
    job_id = bx.job({"normal": 2})
    bx.xero.state.add_fault(
        "rate_limit",
        "PUT",
        path_regex=r".*/ManualJournals",
        retry_after=1,
        headers={"X-Rate-Limit-Problem": problem},
    )
    bx.run()
    items = bx.env.items(job_id).values()
    if problem == "minute":  # retried after Retry-After, with the same Idempotency-Key
        assert {i["status"] for i in items} == {"successful"}
        keys = {
            w["headers"]["Idempotency-Key"]
            for w in bx.writes()
            if w["path"].endswith("/ManualJournals")
        }
        assert len(keys) == 1
    else:  # the organisation's day is spent: nothing booked, the job waits for the next run
        assert {i["status"] for i in items} == {"pending"}
        assert bx.documents() == []
        assert "day limit" in AuditEntry.objects.filter(step="paused").last().message
        assert bx.run().outcome == Outcome.COMPLETED
    assert len(bx.documents()) == 2


def test_a_connection_revoked_mid_job_pauses_it_and_books_nothing(bx, monkeypatch):
    job_id = bx.job({"normal": 2})
    connection_id = str(bx.connection.connection_id)
    bx.run_revoked_after_validation(
        monkeypatch, lambda: bx.xero.state.revoke_connection(connection_id), job_id
    )
    assert "refused the connection" in AuditEntry.objects.filter(step="paused").last().message
