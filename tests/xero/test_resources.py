"""Xero's JSON parsed (exports.xero.resources): each field from the key its name gives (PascalCase,
``ID``; camelCase for /connections) or names itself, read by its type; a required one missing or
a malformed value is a XeroResponseError naming where."""

from __future__ import annotations

import re
import uuid
from datetime import date
from decimal import Decimal

import pytest

from exports.xero import resources as r
from exports.xero.errors import XeroResponseError

ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
UID = uuid.UUID(ID)


def test_keys_come_from_the_field_names_or_the_field():
    connection = {"id": ID, "tenantId": ID, "tenantName": "Demo", "tenantType": "ORGANISATION"}
    assert r.Connection.from_api(connection) == r.Connection(UID, UID, "Demo", "ORGANISATION")
    organisation = {"OrganisationID": ID, "Name": "Demo", "BaseCurrency": "DKK"}
    organisation |= {"CountryCode": "DK", "EndOfYearLockDate": "2026-06-30T00:00:00"}
    assert r.Organisation.from_api(organisation).lock_date == date(2026, 6, 30)
    account = {"AccountID": ID, "Code": "4000", "Name": "Sales", "Type": "REVENUE"}
    account |= {"Status": "ACTIVE", "TaxType": "OUTPUT"}
    parsed = r.Account.from_api(account)
    assert (parsed.account_id, parsed.code, parsed.type, parsed.tax_type) == (
        UID,
        "4000",
        "REVENUE",
        "OUTPUT",
    )
    contact = r.Contact.from_api({"ContactID": ID, "ContactStatus": "ARCHIVED", "AccountNumber": 7})
    assert (contact.status, contact.account_number, contact.name) == ("ARCHIVED", "7", "")
    category = {"TrackingCategoryID": ID, "Name": "Region"}
    category["Options"] = [{"TrackingOptionID": ID, "Name": "North", "Status": "ACTIVE"}]
    assert r.TrackingCategory.from_api(category).options == (
        r.TrackingOption(UID, "North", "ACTIVE"),
    )
    rate = r.TaxRate.from_api({"TaxType": "INPUT", "EffectiveRate": "25.0000"})
    assert rate.effective_rate == Decimal("25.0000")


@pytest.mark.parametrize(
    ("parse", "data", "message"),
    [
        (r.TaxRate.from_api, {"Name": "no type"}, "TaxRate.TaxType is missing"),
        (r.TaxRate.from_api, {"TaxType": "X", "EffectiveRate": "n/a"}, "TaxRate.EffectiveRate"),
        (r.Account.from_api, {"AccountID": "nope"}, "Account.AccountID is not a UUID"),
        (r.Connection.from_api, [], "connection is not an object"),
        (
            r.TrackingCategory.from_api,
            {"TrackingCategoryID": ID, "Name": "Region", "Options": [{"TrackingOptionID": ID}]},
            "TrackingCategory.Options[0].Name is missing",
        ),
    ],
)
def test_a_malformed_answer_names_where(parse, data, message):
    with pytest.raises(XeroResponseError, match=re.escape(message)):
        parse(data)
