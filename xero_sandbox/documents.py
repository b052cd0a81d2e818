"""Xero's rules for the documents the sandbox books: manual journals, bills (``ACCPAY``
invoices) and supplier credit notes (``ACCPAYCREDIT``), also ``ACCREC``/``ACCRECCREDIT``.

``document_save(tenant, kind, element, ...)`` validates one element of a ``PUT``/``POST`` batch
and returns ``(saved document or None, validation messages)``; nothing is stored when there are
messages. Rules (README "Rules"): accounts and tax types must exist and be ``ACTIVE``; tracking
options must exist; manual journals balance (debits = credits) and have two lines or more;
postings dated on or before the organisation's lock date are refused; a ``POSTED`` journal can
only be voided, an ``AUTHORISED`` bill only voided, ``VOIDED``/``DELETED`` documents not at all.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from xero_sandbox.contacts import contact_create
from xero_sandbox.dates import display, msdate, msdatetime, parse_date
from xero_sandbox.tenant import Tenant, new_id

CENT = Decimal("0.01")
KIND_ID = {
    "ManualJournals": "ManualJournalID",
    "Invoices": "InvoiceID",
    "CreditNotes": "CreditNoteID",
}
KIND_TYPES = {"Invoices": ("ACCPAY", "ACCREC"), "CreditNotes": ("ACCPAYCREDIT", "ACCRECCREDIT")}
# Status changes a POST may make: from -> allowed targets (the same status: an edit).
TRANSITIONS = {
    "ManualJournals": {"DRAFT": {"DRAFT", "POSTED", "DELETED"}, "POSTED": {"VOIDED"}},
    "bill": {
        "DRAFT": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
        "SUBMITTED": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
        "AUTHORISED": {"VOIDED"},
    },
}
POSTING = {"POSTED", "AUTHORISED", "VOIDED"}


def money(value: Decimal) -> float:
    return float(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


class _Check:
    """Collects the validation messages of one element."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.messages: list[str] = []

    def fail(self, message: str) -> None:
        if message not in self.messages:
            self.messages.append(message)

    def account(self, line: dict) -> dict | None:
        code, account_id = line.get("AccountCode"), line.get("AccountID")
        account = (
            self.tenant.account_by_id(account_id)
            if account_id
            else self.tenant.account_by_code(code)
        )
        if account is None:
            self.fail(
                f"Account code '{code or account_id or ''}' is not a valid code for this document."
            )
        elif account["Status"] != "ACTIVE":
            self.fail(
                f"The account code '{account['Code']}' has been archived, or deleted. "
                "Each line item must reference a valid account."
            )
            return None
        return account

    def tax(self, line: dict, account: dict | None) -> dict | None:
        tax_type = line.get("TaxType") or (account or {}).get("TaxType") or "NONE"
        tax = self.tenant.tax_rate(tax_type)
        if tax is None:
            self.fail(
                f"The TaxType code '{tax_type}' does not exist or cannot be used for this "
                "type of transaction."
            )
        elif tax["Status"] != "ACTIVE":
            self.fail(f"The TaxType code '{tax_type}' is not active.")
            return None
        return tax

    def tracking(self, line: dict) -> list[dict]:
        out = []
        for entry in line.get("Tracking") or []:
            name, option = entry.get("Name"), entry.get("Option")
            category = next(
                (c for c in self.tenant.tracking if c["Name"] == name and c["Status"] == "ACTIVE"),
                None,
            )
            chosen = next(
                (o for o in (category or {}).get("Options", []) if o["Name"] == option), None
            )
            if category is None or chosen is None or chosen["Status"] != "ACTIVE":
                self.fail(f"The tracking category '{name}' option '{option}' is not valid.")
                continue
            out.append(
                {
                    "Name": name,
                    "Option": option,
                    "TrackingCategoryID": category["TrackingCategoryID"],
                    "TrackingOptionID": chosen["TrackingOptionID"],
                }
            )
        return out

    def date(self, value: Any, today: date, what: str = "Date") -> date:
        if value in (None, ""):
            return today
        parsed = parse_date(value)
        if parsed is None:
            self.fail(f"{what} '{value}' is not a valid date.")
            return today
        return parsed

    def lock(self, day: date, status: str, drafts_too: bool) -> None:
        lock = self.tenant.lock_date()
        if lock is None or (status not in POSTING and not drafts_too):
            return
        if day <= lock:
            self.fail(f"The document date cannot be on or before the lock date ({display(lock)}).")


def _tax_of(amount: Decimal, rate: Decimal, amount_types: str) -> Decimal:
    if amount_types == "NoTax" or not rate:
        return Decimal(0)
    if amount_types == "Inclusive":
        return (amount - amount / (1 + rate / 100)).quantize(CENT, rounding=ROUND_HALF_UP)
    return (amount * rate / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def _amount_types(check: _Check, value: Any, default: str) -> str:
    value = value or default
    if value not in ("Exclusive", "Inclusive", "NoTax"):
        check.fail(f"LineAmountTypes '{value}' is not valid.")
        return default
    return value


def _journal(check: _Check, el: dict, old: dict | None, today: date, drafts_too: bool) -> dict:
    status = el.get("Status") or (old or {}).get("Status") or "DRAFT"
    narration = el.get("Narration", (old or {}).get("Narration"))
    if not narration:
        check.fail("Narration is required.")
    amount_types = _amount_types(
        check, el.get("LineAmountTypes"), (old or {}).get("LineAmountTypes", "NoTax")
    )
    day = check.date(el.get("Date", (old or {}).get("Date")), today)
    source = el.get("JournalLines", (old or {}).get("JournalLines")) or []
    lines, debits, credits = [], Decimal(0), Decimal(0)
    for line in source:
        amount = _decimal(line.get("LineAmount"))
        if amount is None:
            check.fail("Each journal line needs a LineAmount.")
            continue
        account = check.account(line)
        tax = check.tax(line, account)
        rate = Decimal(str(tax["EffectiveRate"])) if tax else Decimal(0)
        given_tax = _decimal(line.get("TaxAmount"))
        tax_amount = given_tax if given_tax is not None else _tax_of(amount, rate, amount_types)
        gross = amount + tax_amount if amount_types == "Exclusive" else amount
        if gross > 0:
            debits += gross
        else:
            credits += gross
        lines.append(
            {
                "LineAmount": money(amount),
                "AccountCode": (account or {}).get("Code", line.get("AccountCode")),
                "AccountID": (account or {}).get("AccountID", line.get("AccountID")),
                "Description": line.get("Description", ""),
                "TaxType": (tax or {}).get("TaxType", line.get("TaxType")),
                "TaxAmount": money(tax_amount),
                "Tracking": check.tracking(line),
                "IsBlank": False,
            }
        )
    if len(source) < 2:
        check.fail("A manual journal needs at least two journal lines.")
    if debits.quantize(CENT) != (-credits).quantize(CENT):
        check.fail(
            f"The total debits ({debits.quantize(CENT)}) must equal total credits "
            f"({credits.quantize(CENT)})"
        )
    check.lock(day, status, drafts_too)
    return {
        "Narration": narration or "",
        "Date": msdate(day),
        "LineAmountTypes": amount_types,
        "Status": status,
        "ShowOnCashBasisReports": bool(el.get("ShowOnCashBasisReports", True)),
        "JournalLines": lines,
        "_date": day,
    }


def _contact(check: _Check, el: dict, old: dict | None) -> dict | None:
    given = el.get("Contact") or (old or {}).get("Contact")
    if not isinstance(given, dict) or not (given.get("ContactID") or given.get("Name")):
        check.fail("A Contact must be specified for this type of transaction")
        return None
    if given.get("ContactID"):
        contact = check.tenant.contacts.get(given["ContactID"])
        if contact is None:
            check.fail(f"The contact '{given['ContactID']}' does not exist.")
        return contact
    # By name: the existing contact with that name, else a new one (made when the document is).
    name = str(given["Name"]).strip()
    found = next(
        (c for c in check.tenant.contacts.values() if c["Name"].lower() == name.lower()), None
    )
    return found or {"_new": True, "Name": name, "IsSupplier": True}


def _bill(check: _Check, kind: str, el: dict, old: dict | None, today: date, drafts_too: bool):
    prior = old or {}
    doc_type = el.get("Type") or prior.get("Type")
    if doc_type not in KIND_TYPES[kind]:
        check.fail(f"Type must be one of {', '.join(KIND_TYPES[kind])}.")
    status = el.get("Status") or prior.get("Status") or "DRAFT"
    amount_types = _amount_types(
        check, el.get("LineAmountTypes"), prior.get("LineAmountTypes", "Exclusive")
    )
    day = check.date(el.get("Date", prior.get("Date")), today)
    due = el.get("DueDate", prior.get("DueDate"))
    due_day = check.date(due, today, "DueDate") if due else None
    source = el.get("LineItems", prior.get("LineItems")) or []
    if not source:
        check.fail("At least one line item is required.")
    lines, sub_total, total_tax = [], Decimal(0), Decimal(0)
    for line in source:
        quantity = _decimal(line.get("Quantity", 1)) or Decimal(1)
        unit = _decimal(line.get("UnitAmount"))
        amount = _decimal(line.get("LineAmount"))
        if amount is None and unit is None:
            check.fail("Each line item needs a UnitAmount or a LineAmount.")
            continue
        if amount is None:
            amount = (quantity * unit).quantize(CENT, rounding=ROUND_HALF_UP)
        if unit is None:
            unit = amount / quantity
        account = check.account(line)
        tax = check.tax(line, account)
        rate = Decimal(str(tax["EffectiveRate"])) if tax else Decimal(0)
        given_tax = _decimal(line.get("TaxAmount"))
        tax_amount = given_tax if given_tax is not None else _tax_of(amount, rate, amount_types)
        net = amount - tax_amount if amount_types == "Inclusive" else amount
        sub_total += net
        total_tax += tax_amount
        lines.append(
            {
                "LineItemID": line.get("LineItemID") or new_id(),
                "Description": line.get("Description", ""),
                "Quantity": float(quantity),
                "UnitAmount": float(unit),
                "AccountCode": (account or {}).get("Code", line.get("AccountCode")),
                "AccountID": (account or {}).get("AccountID", line.get("AccountID")),
                "TaxType": (tax or {}).get("TaxType", line.get("TaxType")),
                "TaxAmount": money(tax_amount),
                "LineAmount": money(amount),
                "Tracking": check.tracking(line),
            }
        )
    contact = _contact(check, el, old)
    check.lock(day, status, drafts_too)
    currency = el.get("CurrencyCode") or prior.get("CurrencyCode") or check.tenant.currency
    total = sub_total + total_tax
    number_field = "InvoiceNumber" if kind == "Invoices" else "CreditNoteNumber"
    doc = {
        "Type": doc_type,
        "Contact": contact,
        "Date": msdate(day),
        "Status": status,
        "LineAmountTypes": amount_types,
        "LineItems": lines,
        "SubTotal": money(sub_total),
        "TotalTax": money(total_tax),
        "Total": money(total),
        "CurrencyCode": currency,
        "CurrencyRate": float(_decimal(el.get("CurrencyRate", prior.get("CurrencyRate"))) or 1),
        "Reference": el.get("Reference", prior.get("Reference", "")),
        number_field: el.get(number_field, prior.get(number_field, "")),
        "_date": day,
    }
    if due_day is not None:
        doc["DueDate"] = msdate(due_day)
    if kind == "Invoices":
        doc.update(AmountDue=money(total), AmountPaid=0.0, AmountCredited=0.0)
    else:
        doc.update(RemainingCredit=money(total))
    return doc


def document_save(
    tenant: Tenant,
    kind: str,
    element: Any,
    *,
    now: datetime,
    drafts_too: bool,
    document_id: str | None = None,
) -> tuple[dict | None, list[str]]:
    """Validate one element and, when valid, store it (create, or update by id)."""
    check = _Check(tenant)
    if not isinstance(element, dict):
        return None, ["Each element must be an object."]
    doc_id = document_id or element.get(KIND_ID[kind])
    old = tenant.documents[kind].get(doc_id) if doc_id else None
    if doc_id and old is None:
        return None, [f"{KIND_ID[kind]} '{doc_id}' does not exist."]
    if old is not None:
        flow = TRANSITIONS["ManualJournals" if kind == "ManualJournals" else "bill"]
        target = element.get("Status") or old["Status"]
        if target not in flow.get(old["Status"], set()):
            return None, [f"A document with status {old['Status']} cannot be changed to {target}."]
        if old["Status"] in POSTING:  # only a status change (void): check the lock date
            check.lock(old["_date"], "VOIDED", drafts_too)
            if check.messages:
                return None, check.messages
    else:
        status = element.get("Status") or "DRAFT"
        allowed = (
            ("DRAFT", "POSTED")
            if kind == "ManualJournals"
            else ("DRAFT", "SUBMITTED", "AUTHORISED")
        )
        if status not in allowed:
            check.fail(f"A new document cannot have status {status}.")
    today = now.date()
    if old is not None and old["Status"] in POSTING:
        doc = {**old, "Status": element.get("Status") or old["Status"]}  # a void changes no line
    elif kind == "ManualJournals":
        doc = _journal(check, element, old, today, drafts_too)
    else:
        doc = _bill(check, kind, element, old, today, drafts_too)
    if check.messages:
        return None, check.messages
    return _store(tenant, kind, doc, doc_id or new_id(), old, now=now), []


def _store(tenant: Tenant, kind: str, doc: dict, doc_id: str, old: dict | None, *, now) -> dict:
    contact = doc.get("Contact")
    if contact and contact.pop("_new", False):
        doc["Contact"] = contact = contact_create(tenant, contact, now=now)
    if contact:
        doc["Contact"] = {"ContactID": contact["ContactID"], "Name": contact["Name"]}
    doc[KIND_ID[kind]] = doc_id
    doc["UpdatedDateUTC"] = msdatetime(now)
    doc["HasAttachments"] = bool(tenant.attachments.get(doc_id))
    tenant.documents[kind][doc_id] = doc
    change = (
        "Created"
        if old is None
        else ("Edited" if old["Status"] == doc["Status"] else doc["Status"].title())
    )
    history_add(tenant, doc_id, change, f"{kind[:-1]} {doc['Status'].lower()}.", now=now)
    return doc


def edit(tenant: Tenant, doc_id: str, changes: dict, *, now: datetime) -> dict:
    """Control API: change a document's fields or lines (``changes``: the fields as a ``POST``
    element names them; lines replace the lines) as a person in Xero might, a posted journal or
    an authorised bill too: its status is kept, every other rule applies (balance, accounts, tax
    types, tracking, the lock date). ``ValueError`` with the messages when a rule refuses it."""
    found = tenant.find_document(doc_id)
    if found is None:
        raise KeyError(doc_id)
    kind, old = found
    if old["Status"] in ("VOIDED", "DELETED"):
        raise ValueError(f"A {old['Status'].lower()} document cannot be edited.")
    check = _Check(tenant)
    element = {**changes, "Status": old["Status"]}
    if kind == "ManualJournals":
        doc = _journal(check, element, old, now.date(), False)
    else:
        doc = _bill(check, kind, element, old, now.date(), False)
    if check.messages:
        raise ValueError("; ".join(check.messages))
    return public(_store(tenant, kind, doc, old[KIND_ID[kind]], old, now=now))


def history_add(tenant: Tenant, doc_id: str, changes: str, details: str, *, now: datetime) -> dict:
    record = {
        "Changes": changes,
        "DateUTC": msdatetime(now),
        "User": "Xero sandbox app",
        "Details": details,
    }
    tenant.history.setdefault(doc_id, []).append(record)
    return record


def public(doc: dict) -> dict:
    """A stored document as Xero shows it (internal fields dropped)."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def set_status(tenant: Tenant, doc_id: str, status: str, *, now: datetime) -> dict:
    """Control API: void or delete a document whatever the rules (as a person in Xero might)."""
    found = tenant.find_document(doc_id)
    if found is None:
        raise KeyError(doc_id)
    _, doc = found
    doc["Status"] = status
    doc["UpdatedDateUTC"] = msdatetime(now)
    history_add(tenant, doc_id, status.title(), f"Document {status.lower()} in Xero.", now=now)
    return public(doc)
