"""Xero bookings made before the read-back existed, reconciled against the local Xero over real
HTTP. Their records carry the summary the old code stored (the base adapter's: Pleo's signed total
and Pleo's account codes, no ``booked_summary_source``): compared with Xero's documents they
would all be ``changed``. They are ``present_not_compared`` instead (not flagged, no monthly
notification), a voided or deleted one is still ``missing``, and bookings made now keep the full
comparison (an edited document is ``changed``)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from exports import clock
from exports.adapters.base import pleo_booking_summary
from exports.models import ExportItemRecord
from exports.notifications.kinds import Kind
from exports.notifications.models import Notification
from exports.services.reconciliation import (
    FLAGGED,
    ReconStatus,
    reconciliation_notify_all,
)
from exports.services.start_flow import Outcome
from tests.test_lifecycle import env  # noqa: F401 - the lifecycle tests' sandbox company
from tests.xero.test_booking import CLEARING, EXPENSE, bx  # noqa: F401 - connected to local Xero
from tests.xero.test_read_back import report, statuses

pytestmark = pytest.mark.django_db

Source = ExportItemRecord.SummarySource


def booked(bx, items) -> list[ExportItemRecord]:  # noqa: F811
    job_id = bx.job(items)
    assert bx.run().outcome == Outcome.COMPLETED
    return list(
        ExportItemRecord.objects.filter(export_job__pleo_job_id=job_id).order_by("external_id")
    )


def as_the_old_code_stored_it(records: list[ExportItemRecord], *, source="") -> None:
    """Each record's summary rewritten as the code before the read-back stored it: the base
    adapter's ``booking_summary`` (Pleo's item, which the snapshot keeps as received), and no
    source (``source`` lets a test mark it otherwise)."""
    for record in records:
        old = pleo_booking_summary(record.item_snapshot)
        assert old is not None
        ExportItemRecord.objects.filter(pk=record.pk).update(
            booked_amount=old.amount,
            booked_currency=old.currency,
            booked_accounts=old.accounts_text,
            booked_summary_source=source,
        )


def test_old_summaries_differ_from_xero_so_a_plain_comparison_would_flag_them(bx):  # noqa: F811
    """The control: the old summaries really are in other terms than Xero's documents (compared
    as if they were Xero's, every one is ``changed``), so the tests below can fail."""
    records = booked(bx, {"normal": 2, "refund": 1})
    assert {r.booked_summary_source for r in records} == {Source.BOOKED_DOCUMENT}
    as_the_old_code_stored_it(records, source=Source.BOOKED_DOCUMENT)
    assert set(statuses(report(bx)).values()) == {ReconStatus.CHANGED}


def test_old_bookings_are_present_not_compared_and_not_flagged(bx, capsys, admin_client):  # noqa: F811
    records = booked(bx, {"normal": 2, "refund": 1})
    as_the_old_code_stored_it(records)
    bx.xero.state.clear_requests()
    found = report(bx)
    assert set(statuses(found).values()) == {ReconStatus.PRESENT_NOT_COMPARED}
    assert ReconStatus.PRESENT_NOT_COMPARED not in FLAGGED
    assert found.ok and found.not_compared == 3
    row = found.rows[0]
    assert "existence checked, amounts not compared" in row.detail
    assert EXPENSE in row.ledger  # what Xero holds now is shown beside it
    reads = [e for e in bx.xero.state.requests(method="GET") if "ManualJournals" in e["path"]]
    assert len(reads) == 1  # read back as any booking: one call for the three

    # The command exits 0 and says what was not compared; the CSV names the status.
    today = clock.now().date().isoformat()
    company = str(bx.env.company.pleo_company_id)
    call_command("reconcile", "--company", company, "--from", today, "--to", today)
    out = capsys.readouterr().out
    assert "present_not_compared: 3" in out and "3 booking(s) made before read-back" in out
    rows = list(csv.DictReader(io.StringIO(found.csv_text())))
    assert {r["status"] for r in rows} == {"present_not_compared"}

    # The admin page says it too, unflagged.
    url = reverse("admin:exports_company_reconciliation", args=[bx.env.company.pk])
    page = admin_client.get(url, {"date_from": today, "date_to": today}).content.decode()
    assert 'data-ok="yes"' in page and 'id="reconciliation-not-compared"' in page

    # The monthly schedule does not notify for them.
    next_month = (clock.now().date().replace(day=28) + timedelta(days=7)).replace(day=1)
    assert reconciliation_notify_all(today=next_month) == 0
    assert not Notification.objects.filter(kind=Kind.RECONCILIATION_FLAGGED).exists()


def test_old_deleted_is_missing_and_new_bookings_keep_the_full_comparison(bx, capsys):  # noqa: F811
    old_records = booked(bx, {"normal": 3})
    as_the_old_code_stored_it(old_records)
    new_records = booked(bx, {"normal": 2})
    assert {r.booked_summary_source for r in new_records} == {Source.BOOKED_DOCUMENT}
    journals = {j["ManualJournalID"]: j for j in bx.documents()}

    voided, deleted, edited_old = (r.external_id for r in old_records)
    edited_new, kept_new = (r.external_id for r in new_records)
    bx.xero.state.set_document_status(bx.tenant.id, voided, "VOIDED")
    bx.xero.state.set_document_status(bx.tenant.id, deleted, "DELETED")
    for document_id in (edited_old, edited_new):
        bx.xero.state.edit_document(
            bx.tenant.id, document_id, JournalLines=shifted(journals[document_id], 10)
        )

    found = report(bx)
    by_status = defaultdict(set)
    for external_id, status in statuses(found).items():
        by_status[status].add(external_id)
    # Known and said: an old booking edited in Xero is not seen (nothing to compare it with).
    assert by_status == {
        ReconStatus.MISSING: {voided, deleted},
        ReconStatus.PRESENT_NOT_COMPARED: {edited_old},
        ReconStatus.CHANGED: {edited_new},
        ReconStatus.MATCHED: {kept_new},
    }
    assert len(found.flagged) == 3 and not found.ok
    today = clock.now().date().isoformat()
    company = str(bx.env.company.pleo_company_id)
    with pytest.raises(CommandError) as flagged:
        call_command("reconcile", "--company", company, "--from", today, "--to", today)
    assert flagged.value.returncode == 1
    out = capsys.readouterr().out
    assert "1 booking(s) made before read-back" in out and "MISSING" in out


def shifted(journal: dict, amount: float) -> list[dict]:
    """The journal's lines with ``amount`` moved onto the debit and off the credit (still
    balanced), as a person editing it in Xero would."""
    keep = ("LineAmount", "AccountCode", "TaxType", "TaxAmount")
    lines = [{k: line[k] for k in keep} for line in journal["JournalLines"]]
    debit = next(line for line in lines if line["AccountCode"] == EXPENSE)
    credit = next(line for line in lines if line["AccountCode"] == CLEARING)
    debit["LineAmount"] = round(debit["LineAmount"] + amount, 2)
    credit["LineAmount"] = round(credit["LineAmount"] - amount, 2)
    return lines
