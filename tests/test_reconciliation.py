"""Reconciliation against the Pleo sandbox: a job exported through the journal, then the ledger
changed under it (an entry deleted, one edited, one booked twice) and one of our records lost;
the report flags each, the command exits 1, the admin page shows totals and a CSV, and the
monthly schedule notifies."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from exports import clock
from exports.models import ExportItemRecord, JournalEntry, JournalLine, Receipt
from exports.notifications.kinds import Kind
from exports.notifications.models import Notification
from exports.services.reconciliation import (
    ReconStatus,
    last_month,
    reconciliation_notify_all,
    reconciliation_report,
)
from exports.services.schedules import RECONCILIATION, TASK_FUNCTIONS, schedules_wanted
from exports.services.start_flow import Outcome
from tests import lifecycle_support

pytestmark = pytest.mark.django_db

env = lifecycle_support.env  # the sandbox company of the lifecycle tests (a fixture)


def _exported(env, items=3) -> list[JournalEntry]:
    env.job(items)
    assert env.run().outcome == Outcome.COMPLETED
    return list(JournalEntry.objects.order_by("pk"))


def _today_report(env):
    today = clock.now().date()
    return reconciliation_report(company=env.company, date_from=today, date_to=today)


def _statuses(report) -> dict[str, str]:
    return {row.external_id: row.status for row in report.rows}


def test_everything_matches_right_after_an_export(env):
    entries = _exported(env)
    report = _today_report(env)
    assert report.ok and report.jobs == 1
    assert report.totals()[ReconStatus.MATCHED] == 3
    record = ExportItemRecord.objects.get(external_id=entries[0].number)
    assert record.booked_amount == entries[0].amount and record.booked_currency == "DKK"
    assert record.booked_accounts  # what we booked is kept for the comparison


def test_a_deleted_and_a_changed_booking_are_flagged(env):
    deleted, changed, kept = _exported(env)
    deleted_number = deleted.number
    deleted.delete()  # someone deleted it in the ledger
    line = changed.lines.filter(kind=JournalLine.Kind.EXPENSE).first()
    JournalLine.objects.filter(pk=line.pk).update(account_code="9999")
    report = _today_report(env)
    statuses = _statuses(report)
    assert statuses[deleted_number] == ReconStatus.MISSING
    assert statuses[changed.number] == ReconStatus.CHANGED
    assert statuses[kept.number] == ReconStatus.MATCHED
    [changed_row] = [row for row in report.rows if row.status == ReconStatus.CHANGED]
    assert "accounts changed" in changed_row.detail and "9999" in changed_row.ledger
    assert not report.ok and len(report.flagged) == 2


def test_journal_summaries_kept_before_their_source_was_recorded_are_still_compared(env):
    """The journal's summary always was its entry as planned: a record without a source (booked
    before it was kept) is compared in full, so an edit is still ``changed``."""
    changed, kept = _exported(env, 2)
    records = ExportItemRecord.objects.filter(external_id__in=[changed.number, kept.number])
    assert {r.booked_summary_source for r in records} == {
        ExportItemRecord.SummarySource.BOOKED_DOCUMENT
    }
    records.update(booked_summary_source=ExportItemRecord.SummarySource.NOT_RECORDED)
    JournalEntry.objects.filter(pk=changed.pk).update(amount=changed.amount + 100)
    statuses = _statuses(_today_report(env))
    assert statuses == {changed.number: ReconStatus.CHANGED, kept.number: ReconStatus.MATCHED}


def test_an_amount_change_a_double_booking_and_an_item_we_have_no_record_of(env):
    first, second, third = _exported(env)
    JournalEntry.objects.filter(pk=first.pk).update(amount=first.amount + 100)
    twin = JournalEntry.objects.create(
        company=env.company,
        accounting_entry_id=second.accounting_entry_id,
        idempotency_key="by-another-hand",
        date=second.date,
        currency=second.currency,
        amount=second.amount,
        created_at=clock.now(),
    )
    lost = ExportItemRecord.objects.filter(external_id=third.number)
    Receipt.objects.filter(item_record__in=lost).delete()  # our record of it is lost, files too
    lost.delete()
    report = _today_report(env)
    statuses = _statuses(report)
    assert statuses[first.number] == ReconStatus.CHANGED
    assert statuses[second.number] == ReconStatus.BOOKED_TWICE
    [unknown] = [row for row in report.rows if row.status == ReconStatus.UNKNOWN_TO_US]
    assert unknown.accounting_entry_id == third.accounting_entry_id
    assert unknown.external_id == third.number  # what Pleo holds
    assert twin.number in next(r.detail for r in report.rows if r.external_id == second.number)


def test_reconcile_command_exits_1_when_flagged_and_0_when_not(env, capsys):
    entries = _exported(env, 2)
    today = clock.now().date().isoformat()
    company = str(env.company.pleo_company_id)
    args = ["reconcile", "--company", company, "--from", today, "--to", today]
    call_command(*args, "--json")
    assert json.loads(capsys.readouterr().out)["totals"]["matched"] == 2
    entries[0].delete()
    with pytest.raises(CommandError) as flagged:
        call_command(*args)
    assert flagged.value.returncode == 1
    assert "MISSING" in capsys.readouterr().out
    with pytest.raises(CommandError) as usage:
        call_command("reconcile", "--company", company, "--from", "soon", "--to", today)
    assert usage.value.returncode == 2


def test_the_admin_page_shows_totals_and_a_csv(env, client):
    entries = _exported(env, 2)
    entries[0].delete()
    user = User.objects.create_user("rec", "rec@example.com", None, is_staff=True)
    codenames = ["view_company", "view_exportitemrecord", "view_all_companies"]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    url = reverse("admin:exports_company_reconciliation", args=[env.company.pk])
    env.state.clear_requests()
    assert "reconciliation-report" not in client.get(url).content.decode()
    assert env.state.requests() == []  # the bare page (the form) makes no Pleo call
    today = clock.now().date().isoformat()
    page = client.get(url, {"date_from": today, "date_to": today}).content.decode()
    assert 'data-ok="no"' in page and "missing" in page
    response = client.get(url, {"date_from": today, "date_to": today, "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert sorted(row["status"] for row in rows) == ["matched", "missing"]


def test_the_monthly_schedule_notifies_when_something_is_flagged(env, settings):
    settings.RECONCILIATION_SCHEDULE = "monthly"
    settings.NOTIFY_EMAILS = ["integrator@example.com"]
    assert schedules_wanted()[RECONCILIATION]["func"] in TASK_FUNCTIONS
    entries = _exported(env, 1)
    today = clock.now().date()
    next_month = (today.replace(day=28) + (today.replace(day=28) - today.replace(day=1))).replace(
        day=1
    )
    assert last_month(next_month)[0] <= today <= last_month(next_month)[1]
    assert reconciliation_notify_all(today=next_month) == 0
    entries[0].delete()
    assert reconciliation_notify_all(today=next_month) == 1
    note = Notification.objects.get(kind=Kind.RECONCILIATION_FLAGGED)
    assert note.company_id == env.company.pk
