"""What one Pleo export item books as in Xero: a manual journal, a bill or a credit note, planned
before anything is sent (pure: reads no model, calls nothing; the caller passes the mapping).

The method is Pleo's ``bookkeeping.method``: ``journal`` → a manual journal; ``accounts_payable``
(Pleo's design pages also say ``payable``) → a bill (``ACCPAY``) against the supplier's contact,
or a credit note (``ACCPAYCREDIT``) when the item's total is negative (a refund); ``none``, absent
or anything else → the connection's default method.

Amounts are Pleo's ``inWalletCurrency`` values (minor units, ``exports.money``), booked in the
organisation's base currency. An item whose wallet currency is not the base currency cannot be
reconciled without an exchange rate: it fails (``validation_failure``), no rate is ever guessed.
The lines' net amounts plus their tax must equal Pleo's total, or the item fails alike.

* Journal: each accounting entry line debits its mapped account with its net amount, with its
  mapped tax type and Pleo's tax amount (``LineAmountTypes: Exclusive``; Xero adds the tax to the
  line), and its tags as tracking; the mapped contra account is credited with the total (tax type
  ``NONE``). A refund's negative amounts reverse every side.
* Bill / credit note: one line item per Pleo line (net as ``UnitAmount``, tax as ``TaxAmount``,
  mapped account, tax type and tracking), positive amounts (a credit note negates the refund's).
  The contact is resolved by the caller (``exports.services.xero_booking``).

The text Xero shows carries Pleo's ``accountingEntryId`` and the export job's id: the journal's
``Narration``, the bill's ``Reference``. A date on or before the organisation's lock date either
fails the item (policy ``fail``, the message names the lock date) or is booked on the first open
date with the original date in that text (policy ``next_open_date``). Documents are drafts unless
the connection books them posted (journals ``POSTED``, bills ``AUTHORISED``).

``document_summary`` reads a document, planned or as Xero holds it, the one way the
reconciliation compares them (``exports.services.xero_read_back``): its total in minor units as
Xero shows it (a bill's or credit note's lines with their tax, positive; a journal's debits, tax
included: a manual journal has no total, and its debits are its size whichever side the contra
account is on), its currency (a journal's is the organisation's base currency) and the sorted
account codes of its lines (a journal's contra account included; tax goes to Xero's tax
accounts, which no line names).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from exports.adapters.base import LedgerSummary
from exports.adapters.journal import (
    Unbookable,
    booking_date,
    entry_description,
    minor_units,
    required_mapping,
)
from exports.money import currency_exponent, format_minor, minor_to_major
from exports.pleo import ItemFailureReasonType as ItemFailure
from exports.services.xero_mapping import pleo_codes_of_item
from exports.xero.models import BookingMethod, LockDatePolicy, PleoCodeKind, XeroBooking

PAYABLE_METHODS = frozenset({"accounts_payable", "payable"})
Codes = Callable[[str, str], str]  # (PleoCodeKind, Pleo code) -> the mapped Xero code, or ""


@dataclass(frozen=True)
class BookingOptions:
    """The connection's settings and the organisation's facts a plan depends on."""

    job_id: uuid.UUID | str
    base_currency: str
    default_method: str = BookingMethod.JOURNAL
    posted: bool = False
    lock_date: date | None = None
    lock_policy: str = LockDatePolicy.FAIL


@dataclass(frozen=True)
class PlannedDocument:
    """One document to send: ``body`` is Xero's element (a bill's ``Contact`` is filled in by
    the caller from ``vendor``); ``reference`` is the exact ``Narration``/``Reference`` text."""

    kind: XeroBooking.Kind
    body: dict
    reference: str
    accounting_entry_id: uuid.UUID
    vendor: Mapping[str, Any] | None = None
    moved_from: date | None = None


def method_of(item: Mapping[str, Any], default: str) -> str:
    """``journal`` or ``accounts_payable`` for ``item`` (module docstring)."""
    bookkeeping = item.get("bookkeeping")
    method = bookkeeping.get("method") if isinstance(bookkeeping, Mapping) else None
    method = method.strip().lower() if isinstance(method, str) else ""
    if method == "journal":
        return BookingMethod.JOURNAL
    if method in PAYABLE_METHODS:
        return BookingMethod.ACCOUNTS_PAYABLE
    return default


def _amount(minor: int, currency: str) -> float:
    return float(minor_to_major(minor, currency))


def _code(item_code: str, kind: str, codes: Codes, what: str) -> str:
    mapped = codes(kind, item_code) if item_code else ""
    if not mapped:
        failure = {
            PleoCodeKind.ACCOUNT: ItemFailure.ACCOUNT_UNKNOWN,
            PleoCodeKind.CONTRA_ACCOUNT: ItemFailure.ACCOUNT_UNKNOWN,
            PleoCodeKind.TAX_CODE: ItemFailure.TAX_CODE_UNKNOWN,
        }.get(kind, ItemFailure.TAG_UNKNOWN)
        raise Unbookable(failure, f"{what} {item_code or '(none)'} has no Xero mapping.")
    return mapped


def _line_codes(line: Mapping) -> tuple[str, str, list[str]]:
    """(account code, tax code, tags as ``group/code``) of one Pleo line, as the mapping reads
    them (``pleo_codes_of_item`` on the line alone)."""
    found = pleo_codes_of_item(item={"accountingEntryLines": [line]})
    account = next((c.code for c in found if c.kind == PleoCodeKind.ACCOUNT), "")
    tax = next((c.code for c in found if c.kind == PleoCodeKind.TAX_CODE), "")
    tags = [c.code for c in found if c.kind == PleoCodeKind.TAG]
    return account, tax, tags


def _tracking(tags: list[str], codes: Codes) -> list[dict]:
    tracking = []
    for tag in tags:
        category, _, option = _code(tag, PleoCodeKind.TAG, codes, "Pleo tag").partition("/")
        tracking.append({"Name": category, "Option": option})
    return tracking


def _lines(item: Mapping, currency: str, codes: Codes) -> tuple[list[dict], int]:
    """Per Pleo line: mapped account, tax type, tracking, net and tax (minor units, signed);
    and the lines' sum of net plus tax."""
    lines = item.get("accountingEntryLines")
    if not isinstance(lines, list) or not lines:
        raise Unbookable(
            ItemFailure.VALIDATION_FAILURE, "The item has no accounting lines; nothing to book."
        )
    planned, booked = [], 0
    for number, line in enumerate(lines, start=1):
        line = required_mapping(line, f"Line {number}")
        net_pair = required_mapping(line.get("netAmount"), f"The net amount of line {number}")
        net = minor_units(
            net_pair.get("inWalletCurrency"), f"The net amount of line {number}", currency
        )
        tax = 0
        if isinstance(line.get("tax"), Mapping) and line["tax"].get("amount") is not None:
            pair = required_mapping(line["tax"].get("amount"), f"The tax amount of line {number}")
            tax = minor_units(pair.get("inWalletCurrency"), f"The tax of line {number}", currency)
        account, tax_code, tags = _line_codes(line)
        planned.append(
            {
                "net": net,
                "tax": tax,
                "AccountCode": _code(account, PleoCodeKind.ACCOUNT, codes, "Pleo account"),
                "TaxType": _code(tax_code, PleoCodeKind.TAX_CODE, codes, "Pleo tax code")
                if tax_code
                else "NONE",
                "Tracking": _tracking(tags, codes),
            }
        )
        booked += net + tax
    return planned, booked


def _dated(day: date, options: BookingOptions) -> tuple[date, date | None]:
    """(the date to book on, the original date when it was moved past the lock date)."""
    lock = options.lock_date
    if lock is None or day > lock:
        return day, None
    if options.lock_policy != LockDatePolicy.NEXT_OPEN_DATE:
        raise Unbookable(
            ItemFailure.ACCOUNTING_SYSTEM_VALIDATION_FAILURE,
            f"The item is dated {day.isoformat()}, on or before the Xero organisation's lock "
            f"date {lock.isoformat()}, so it cannot be booked. Ask your accountant to move the "
            f"lock date, or choose 'book on the first open date' on the company's Xero "
            f"connection, then export it again.",
        )
    return lock + timedelta(days=1), day


def plan_document(
    item: Mapping[str, Any], *, codes: Codes, options: BookingOptions
) -> PlannedDocument:
    """The document ``item`` books as (module docstring). Raises :class:`Unbookable`."""
    item = required_mapping(item, "The export item")
    try:
        entry_id = uuid.UUID(str(item.get("accountingEntryId")))
    except ValueError:
        raise Unbookable(
            ItemFailure.VALIDATION_FAILURE, "The item has no accounting entry id."
        ) from None
    amount = required_mapping(item.get("amount"), "The item's amount")
    wallet = required_mapping(
        amount.get("inWalletCurrency"), "The item's amount in the wallet currency"
    )
    currency = str(wallet.get("currency") or "")
    base = options.base_currency.upper()
    if currency.upper() != base:
        raise Unbookable(
            ItemFailure.VALIDATION_FAILURE,
            f"Pleo's accounting entry is in {currency or 'no currency'}, but the Xero "
            f"organisation's base currency is {base}: the amounts cannot be reconciled without "
            f"an exchange rate, and none is guessed. Book it by hand or export it from a "
            f"{base} wallet.",
        )
    total = minor_units(wallet, "The item's amount", currency)
    lines, booked = _lines(item, currency, codes)
    if booked != total:
        raise Unbookable(
            ItemFailure.VALIDATION_FAILURE,
            f"The lines add up to {format_minor(booked, currency)} {currency} (net plus tax) but "
            f"Pleo's total is {format_minor(total, currency)} {currency}; not booked. Check the "
            f"item's lines in Pleo.",
        )
    if total == 0:
        raise Unbookable(
            ItemFailure.VALIDATION_FAILURE, "The item's amount is zero; there is nothing to book."
        )
    day, moved_from = _dated(booking_date(item.get("date")), options)
    text = f"Pleo {entry_id} (export job {options.job_id})"
    if moved_from is not None:
        text += f"; dated {moved_from.isoformat()} in Pleo, booked after the lock date"
    description = entry_description(item)
    method = method_of(item, options.default_method)
    if method == BookingMethod.ACCOUNTS_PAYABLE:
        return _bill(item, entry_id, lines, total, currency, day, text, description, options)
    journal_lines = [
        {
            "LineAmount": _amount(line["net"], currency),
            "AccountCode": line["AccountCode"],
            "TaxType": line["TaxType"],
            "TaxAmount": _amount(line["tax"], currency),
            "Description": description,
            "Tracking": line["Tracking"],
        }
        for line in lines
    ]
    contra = item.get("contraAccount") if isinstance(item.get("contraAccount"), Mapping) else {}
    contra_code = str(contra.get("code") or contra.get("identifier") or "").strip()
    journal_lines.append(
        {
            "LineAmount": -_amount(total, currency),
            "AccountCode": _code(
                contra_code, PleoCodeKind.CONTRA_ACCOUNT, codes, "Pleo contra account"
            ),
            "TaxType": "NONE",
            "TaxAmount": 0.0,
            "Description": description,
        }
    )
    body = {
        "Narration": f"{text}: {description}"[:4000],
        "Date": day.isoformat(),
        "LineAmountTypes": "Exclusive",
        "Status": "POSTED" if options.posted else "DRAFT",
        "JournalLines": journal_lines,
    }
    return PlannedDocument(
        XeroBooking.Kind.MANUAL_JOURNAL, body, body["Narration"], entry_id, None, moved_from
    )


def _bill(item, entry_id, lines, total, currency, day, text, description, options):
    vendor = item.get("vendor") if isinstance(item.get("vendor"), Mapping) else None
    supplier = item.get("supplier") if isinstance(item.get("supplier"), Mapping) else {}
    if vendor is None and not str(supplier.get("name") or "").strip():
        raise Unbookable(
            ItemFailure.VENDOR_UNKNOWN,
            "A bill needs a supplier, and the item has neither a vendor nor a supplier name. "
            "Assign a vendor to it in Pleo and export it again.",
        )
    refund = total < 0
    sign = -1 if refund else 1
    kind = XeroBooking.Kind.CREDIT_NOTE if refund else XeroBooking.Kind.BILL
    body = {
        "Type": "ACCPAYCREDIT" if refund else "ACCPAY",
        "Date": day.isoformat(),
        "CurrencyCode": currency.upper(),
        "Status": "AUTHORISED" if options.posted else "DRAFT",
        "LineAmountTypes": "Exclusive",
        "Reference": text[:255],
        "LineItems": [
            {
                "Description": description or "Pleo expense",
                "Quantity": 1,
                "UnitAmount": _amount(sign * line["net"], currency),
                "AccountCode": line["AccountCode"],
                "TaxType": line["TaxType"],
                "TaxAmount": _amount(sign * line["tax"], currency),
                "Tracking": line["Tracking"],
            }
            for line in lines
        ],
    }
    if not refund:
        body["DueDate"] = day.isoformat()
    who = vendor or {"name": supplier.get("name")}
    return PlannedDocument(kind, body, body["Reference"], entry_id, who, None)


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or value is None:
        return Decimal(0)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)


def document_summary(kind: str, document: Mapping[str, Any], *, currency: str) -> LedgerSummary:
    """The module docstring's reading of ``document`` (a planned body or Xero's), a document of
    ``kind`` (``XeroBooking.Kind``); ``currency``: the organisation's base currency (a journal's
    currency, and a bill's when it names none)."""
    if kind == XeroBooking.Kind.MANUAL_JOURNAL:
        lines = [line for line in document.get("JournalLines") or [] if isinstance(line, Mapping)]
        taxed = document.get("LineAmountTypes") == "Exclusive"  # Xero's default is NoTax
        grosses = [
            _number(line.get("LineAmount")) + (_number(line.get("TaxAmount")) if taxed else 0)
            for line in lines
        ]
        total = sum((gross for gross in grosses if gross > 0), Decimal(0))
    else:
        lines = [line for line in document.get("LineItems") or [] if isinstance(line, Mapping)]
        currency = str(document.get("CurrencyCode") or currency)
        taxed = (document.get("LineAmountTypes") or "Exclusive") == "Exclusive"
        total = Decimal(0)
        for line in lines:
            net = (
                _number(line["LineAmount"])
                if line.get("LineAmount") is not None
                else _number(line.get("Quantity", 1)) * _number(line.get("UnitAmount"))
            )
            total += net + (_number(line.get("TaxAmount")) if taxed else 0)
    minor = int(total.scaleb(currency_exponent(currency)).quantize(1, rounding=ROUND_HALF_UP))
    accounts = {str(line.get("AccountCode") or "").strip() for line in lines}
    return LedgerSummary(minor, currency.upper(), tuple(sorted(accounts - {""})))
