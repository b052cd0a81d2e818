"""Items booked by hand, and the lifecycle's "already booked?" check, against the Pleo sandbox:
an operator settles a failed item in the admin; Pleo exports the expense again (same
``accountingEntryId``, new job, new idempotency key); it is reported successful with the
reference and never booked. An expense the journal booked in an earlier job is reported with
that entry, naming the earlier job."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from exports.models import AuditEntry, AuditStep, ExportItemRecord, JournalEntry, ManualBooking
from exports.services.settlement import earlier_bookings_find
from exports.services.start_flow import Outcome
from exports.settlement.models import BY_HAND
from tests import lifecycle_support

pytestmark = pytest.mark.django_db

env = lifecycle_support.env  # the sandbox company of the lifecycle tests (a fixture)
CHANGELIST = "admin:exports_exportitemrecord_changelist"


def _settler(name="settler", *, settle=True) -> User:
    user = User.objects.create_user(name, f"{name}@example.com", None, is_staff=True)
    codenames = ["view_exportitemrecord", "view_all_companies"] + (
        ["settle_item"] if settle else []
    )
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def _failed_item(env) -> tuple[str, ExportItemRecord]:
    job_id = env.job(["normal", "missing_account"])
    assert env.run().outcome == Outcome.COMPLETED_WITH_ERRORS
    failed = ExportItemRecord.objects.get(result=ExportItemRecord.Result.FAILED)
    return job_id, failed


def _settle(client, record, reference):
    url = reverse(CHANGELIST)
    data = {"action": "mark_booked_by_hand", "_selected_action": [record.pk]}
    page = client.post(url, data)
    assert page.status_code == 200
    assert f'name="reference_{record.pk}"' in page.content.decode()
    return client.post(url, {**data, "confirm": "yes", f"reference_{record.pk}": reference})


def test_a_manual_booking_is_honoured_when_pleo_exports_the_expense_again(env, client):
    _, failed = _failed_item(env)
    entries_before = JournalEntry.objects.count()
    client.force_login(_settler())
    response = _settle(client, failed, "V-2026-0042")
    assert response.status_code == 302
    booking = ManualBooking.objects.get()
    assert (booking.reference, booking.booked_by_name) == ("V-2026-0042", "settler")
    assert booking.accounting_entry_id == failed.accounting_entry_id
    assert "V-2026-0042 (settler)" in client.get(reverse(CHANGELIST)).content.decode()
    marked = AuditEntry.objects.get(step=AuditStep.ITEM_BOOKED_BY_HAND)
    assert "settler" in marked.message and "V-2026-0042" in marked.message

    # Pleo exports the same expense again, in a new job (still without an account).
    again = env.job(["missing_account"], accounting_entry_ids=[str(failed.accounting_entry_id)])
    assert env.run().outcome == Outcome.COMPLETED
    item = env.items(again)[str(failed.accounting_entry_id)]
    assert (item["status"], item["externalId"]) == ("successful", "V-2026-0042")
    record = ExportItemRecord.objects.get(export_job__pleo_job_id=again)
    assert (record.result, record.adapter) == (ExportItemRecord.Result.SUCCESSFUL, BY_HAND)
    assert JournalEntry.objects.count() == entries_before  # never booked by the adapter
    said = AuditEntry.objects.get(step=AuditStep.ITEM_ALREADY_BOOKED)
    assert "booked by hand by settler" in said.message and "V-2026-0042" in said.message


def test_an_expense_booked_by_an_earlier_job_is_reported_with_that_entry(env):
    first = env.job(1)
    assert env.run().outcome == Outcome.COMPLETED
    entry = JournalEntry.objects.get()
    again = env.job(1, accounting_entry_ids=[str(entry.accounting_entry_id)])
    assert env.run().outcome == Outcome.COMPLETED
    assert JournalEntry.objects.count() == 1
    assert env.items(again)[str(entry.accounting_entry_id)]["externalId"] == entry.number
    said = AuditEntry.objects.get(step=AuditStep.ITEM_ALREADY_BOOKED)
    assert f"by the earlier job {first}" in said.message and entry.number in said.message


def test_forgetting_a_manual_booking_is_audited_and_the_next_export_is_booked_again(env, client):
    _, failed = _failed_item(env)
    client.force_login(_settler())
    _settle(client, failed, "V-1")
    url = reverse(CHANGELIST)
    data = {"action": "forget_manual_booking", "_selected_action": [failed.pk]}
    assert "Forget the manual booking" in client.post(url, data).content.decode()
    assert client.post(url, {**data, "confirm": "yes"}).status_code == 302
    assert not ManualBooking.objects.exists()
    forgot = AuditEntry.objects.get(step=AuditStep.MANUAL_BOOKING_FORGOTTEN)
    assert "V-1" in forgot.message and "forgotten by settler" in forgot.message
    env.job(["missing_account"], accounting_entry_ids=[str(failed.accounting_entry_id)])
    assert env.run().outcome == Outcome.FAILED_JOB  # checked and refused again, not "booked"


def test_settling_needs_the_permission_a_failed_item_and_a_reference(env, client):
    job_id, failed = _failed_item(env)
    booked = ExportItemRecord.objects.get(result=ExportItemRecord.Result.SUCCESSFUL)
    client.force_login(_settler("looker", settle=False))
    assert "mark_booked_by_hand" not in client.get(reverse(CHANGELIST)).content.decode()
    client.force_login(_settler())
    url = reverse(CHANGELIST)
    data = {"action": "mark_booked_by_hand", "_selected_action": [failed.pk], "confirm": "yes"}
    page = client.post(url, {**data, f"reference_{failed.pk}": ""})
    assert page.status_code == 200 and "This field is required" in page.content.decode()
    client.post(url, {**data, "_selected_action": [booked.pk], f"reference_{booked.pk}": "X"})
    assert not ManualBooking.objects.exists()


def test_the_check_before_booking_costs_queries_per_page_not_per_item(env):
    env.job(30)
    assert env.run().outcome == Outcome.COMPLETED
    from exports.adapters import get_adapter

    company = env.company
    ids = list(JournalEntry.objects.values_list("accounting_entry_id", flat=True))
    adapter = get_adapter("journal", company=company)
    with CaptureQueriesContext(connection) as queries:
        found = earlier_bookings_find(company=company, adapter=adapter, entry_ids=ids)
    assert len(found) == 30
    assert len(queries) == 3  # manual bookings, the journal, the earlier jobs' records


def test_a_company_scoped_user_cannot_settle_another_companys_item(env, client):
    from exports.models import CompanyMembership
    from tests.factories import make_company

    _, failed = _failed_item(env)
    user = User.objects.create_user("scoped", "s@example.com", None, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_exportitemrecord", "settle_item"])
    )
    membership = CompanyMembership.objects.create(user=user)
    membership.companies.add(make_company(name="Other"))
    client.force_login(user)
    assert str(failed.accounting_entry_id) not in client.get(reverse(CHANGELIST)).content.decode()
    _data = {"action": "mark_booked_by_hand", "_selected_action": [failed.pk], "confirm": "yes"}
    client.post(reverse(CHANGELIST), {**_data, f"reference_{failed.pk}": "V-9"})
    assert not ManualBooking.objects.exists()
