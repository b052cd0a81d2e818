"""Contacts: create (``PUT``), create or update (``POST``), list with ``searchTerm``, ``where``
(``Name=="…"``), ``IDs`` and ``page``. Xero's rule that matters here: a contact name is unique
in an organisation (``"The contact name X is already assigned to another contact."``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from xero_sandbox.dates import msdatetime
from xero_sandbox.tenant import Tenant, new_id

EDITABLE = (
    "Name",
    "FirstName",
    "LastName",
    "EmailAddress",
    "AccountNumber",
    "ContactNumber",
    "TaxNumber",
    "CompanyNumber",
    "DefaultCurrency",
    "BankAccountDetails",
    "PurchasesDefaultAccountCode",
    "SalesDefaultAccountCode",
    "Website",
)


def contact_create(tenant: Tenant, fields: dict, *, now: datetime) -> dict:
    contact = {
        "ContactID": new_id(),
        "ContactStatus": "ACTIVE",
        "Name": fields["Name"],
        "IsSupplier": bool(fields.get("IsSupplier", False)),
        "IsCustomer": bool(fields.get("IsCustomer", False)),
        "Addresses": [],
        "Phones": [],
        "ContactGroups": [],
        "ContactPersons": [],
        "HasAttachments": False,
        "HasValidationErrors": False,
        "UpdatedDateUTC": msdatetime(now),
    }
    contact.update({k: fields[k] for k in EDITABLE if k in fields and fields[k] is not None})
    tenant.contacts[contact["ContactID"]] = contact
    return contact


def contact_save(
    tenant: Tenant, element: Any, *, now: datetime, contact_id: str | None = None
) -> tuple[dict | None, list[str]]:
    """Validate one contact of a batch and store it; ``(contact, [])`` or ``(None, messages)``."""
    if not isinstance(element, dict):
        return None, ["Each element must be an object."]
    contact_id = contact_id or element.get("ContactID")
    old = tenant.contacts.get(contact_id) if contact_id else None
    if contact_id and old is None:
        return None, [f"ContactID '{contact_id}' does not exist."]
    name = element.get("Name", (old or {}).get("Name"))
    if not name or not str(name).strip():
        return None, ["The contact name must be specified."]
    name = str(name).strip()
    if len(name) > 255:
        return None, ["The contact name must be 255 characters or fewer."]
    clash = next(
        (c for c in tenant.contacts.values() if c["Name"].lower() == name.lower() and c is not old),
        None,
    )
    if clash is not None:
        return None, [
            f"The contact name {name} is already assigned to another contact. "
            "The contact name must be unique across all active contacts."
        ]
    if old is None:
        return contact_create(tenant, {**element, "Name": name}, now=now), []
    old.update({k: element[k] for k in EDITABLE if k in element})
    old["Name"] = name
    if element.get("ContactStatus") in ("ACTIVE", "ARCHIVED"):
        old["ContactStatus"] = element["ContactStatus"]
    old["UpdatedDateUTC"] = msdatetime(now)
    return old, []


def contacts_search(
    tenant: Tenant, *, search_term: str | None, ids: list[str], include_archived: bool
) -> list[dict]:
    """``searchTerm``: case-insensitive substring of the name, email or account number."""
    out = []
    for contact in tenant.contacts.values():
        if ids and contact["ContactID"] not in ids:
            continue
        if contact["ContactStatus"] == "ARCHIVED" and not include_archived and not ids:
            continue
        if search_term:
            term = search_term.lower()
            haystack = " ".join(
                str(contact.get(k) or "") for k in ("Name", "EmailAddress", "AccountNumber")
            ).lower()
            if term not in haystack:
                continue
        out.append(contact)
    return out
