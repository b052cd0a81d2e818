"""The mapping: the codes of an export item, proposals where codes match, the Xero adapter's
per-item check (one failure type per kind, the message naming the code and the mapping page) and
the page of codes with no valid mapping."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from exports import clock
from exports.adapters import BookingRequest, get_adapter
from exports.models import (
    ExportItemRecord,
    ExportJob,
    Trigger,
    XeroAccount,
    XeroMapping,
    XeroTaxRate,
    XeroTrackingOption,
)
from exports.pleo import ItemFailureReasonType
from exports.services import xero_mapping
from exports.xero.models import PleoCodeKind
from tests.xero.support import TENANT, make_connection

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("xero_settings")]

ITEM = {
    "accountingEntryId": "6a3f3b43-3c1e-4b0e-9d53-7b0b7a1b2c3d",
    "accountingEntryLines": [
        {
            "account": {"id": "a", "name": "Travel", "code": "6100", "identifier": "GL-6100"},
            "tax": {"id": "t", "code": "INPUT2", "rate": 0.2},
            "tags": [{"id": "g", "code": "Sales", "groupCode": "Department"}],
        },
        {"account": {"id": "b", "name": "Meals", "code": None, "identifier": "GL-6200"}},
    ],
    "contraAccount": {"id": "c", "name": "Pleo wallet", "code": "1200", "identifier": None},
    "vendor": None,
}


def synced(connection) -> None:
    for code, status in (("6100", "ACTIVE"), ("GL-6200", "ARCHIVED"), ("1200", "ACTIVE")):
        XeroAccount.objects.create(
            connection=connection, account_id=uuid.uuid4(), code=code, status=status
        )
    XeroTaxRate.objects.create(connection=connection, tax_type="INPUT2", status="ACTIVE")
    XeroTrackingOption.objects.create(
        connection=connection,
        category_id=TENANT,
        category_name="Department",
        category_status="ACTIVE",
        option_id=TENANT,
        name="Sales",
        status="ACTIVE",
    )


def stored(company, item=ITEM) -> None:
    """One export item of one job of ``company``, its snapshot stored as the lifecycle does."""
    job = ExportJob.objects.create(
        pleo_job_id=uuid.uuid4(),
        company=company,
        status=ExportJob.Status.IN_PROGRESS,
        claim=ExportJob.Claim.OURS,
        created_at=clock.now(),
        expires_in=3600,
        seen_via=Trigger.SCHEDULE,
    )
    ExportItemRecord.objects.create(
        export_job=job,
        accounting_entry_id=uuid.uuid4(),
        idempotency_key=uuid.uuid4().hex,
        item_snapshot=item,
    )


def check(connection, item=ITEM):
    adapter = get_adapter("xero", company=connection.company)
    return adapter.precheck(BookingRequest(item=item, idempotency_key="k", pleo_job_id="j"))


def test_the_codes_of_an_item():
    codes = [(c.kind, c.code) for c in xero_mapping.pleo_codes_of_item(item=ITEM)]
    assert codes == [
        (PleoCodeKind.ACCOUNT, "6100"),
        (PleoCodeKind.TAX_CODE, "INPUT2"),
        (PleoCodeKind.TAG, "Department/Sales"),
        (PleoCodeKind.ACCOUNT, "GL-6200"),
        (PleoCodeKind.CONTRA_ACCOUNT, "1200"),
    ]


def test_unmapped_codes_fail_the_item_then_proposals_map_the_matching_ones():
    connection = make_connection()
    synced(connection)
    first = check(connection)
    assert first.failure_type == ItemFailureReasonType.ACCOUNT_UNKNOWN
    assert "6100 has no Xero mapping" in first.message
    assert reverse("admin:exports_xeromapping_changelist") in first.message
    assert xero_mapping.xero_mapping_propose(company=connection.company) == 0  # none stored yet

    stored(connection.company)
    assert len(xero_mapping.pleo_codes_seen(company=connection.company)) == 5
    assert xero_mapping.xero_mapping_propose(company=connection.company) == 4  # not the archived
    second = check(connection)
    assert second.failure_type == ItemFailureReasonType.ACCOUNT_UNKNOWN
    assert "GL-6200 has no Xero mapping" in second.message

    XeroMapping.objects.create(
        company=connection.company, kind="account", pleo_code="GL-6200", xero_code="GL-6200"
    )
    inactive = check(connection)
    assert "GL-6200 is mapped, but Xero account GL-6200 is not active" in inactive.message
    XeroAccount.objects.filter(code="GL-6200").update(status="ACTIVE")
    assert check(connection).ok


@pytest.mark.parametrize(
    ("kind", "code", "failure"),
    [
        ("tax_code", "INPUT2", ItemFailureReasonType.TAX_CODE_UNKNOWN),
        ("tag", "Department/Sales", ItemFailureReasonType.TAG_UNKNOWN),
    ],
)
def test_each_kind_fails_with_its_type(kind, code, failure):
    connection = make_connection()
    synced(connection)
    stored(connection.company)
    xero_mapping.xero_mapping_propose(company=connection.company)
    XeroMapping.objects.filter(pleo_code="GL-6200").delete()
    XeroMapping.objects.create(
        company=connection.company, kind="account", pleo_code="GL-6200", xero_code="6100"
    )
    XeroMapping.objects.filter(kind=kind, pleo_code=code).update(xero_code="")
    result = check(connection)
    assert result.failure_type == failure and code in result.message


def test_a_vendor_without_a_contact_passes_and_one_mapped_to_no_contact_fails():
    connection = make_connection()
    item = {"accountingEntryLines": [], "vendor": {"id": "v", "name": "Acme", "code": "V-1"}}
    assert check(connection, item).ok  # booking finds or creates its contact
    XeroMapping.objects.create(
        company=connection.company, kind="vendor", pleo_code="V-1", xero_code=str(uuid.uuid4())
    )
    result = check(connection, item)
    assert result.failure_type == ItemFailureReasonType.VENDOR_UNKNOWN and "V-1" in result.message


def test_the_unmapped_page_lists_codes_without_a_valid_mapping(admin_client):
    connection = make_connection()
    synced(connection)
    stored(connection.company)
    xero_mapping.xero_mapping_propose(company=connection.company)
    page = admin_client.get(reverse("admin:exports_xeromapping_unmapped")).content.decode()
    assert "GL-6200" in page and "no mapping" in page
    assert ">6100<" not in page  # mapped to an active account
    mapping = XeroMapping.objects.get(pleo_code="6100")
    url = reverse("admin:exports_xeromapping_change", args=[mapping.pk])
    admin_client.post(
        url,
        {
            "company": connection.company.pk,
            "kind": "account",
            "pleo_code": "6100",
            "xero_code": "1200",
        },
    )
    mapping.refresh_from_db()
    assert mapping.xero_code == "1200" and not mapping.proposed
