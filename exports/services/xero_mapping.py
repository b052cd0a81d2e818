"""A company's mapping of Pleo codes to Xero codes: the codes an export item carries, which of
them were seen, proposals where the codes match, and the per-item check of the Xero adapter.

The codes of an export item (Pleo's ``ExportItemV3``, docs/pleo-export-api.md §5): per
accounting entry line its ``account`` (``code``, else ``identifier``), its ``tax.code`` and its
``tags`` (``groupCode/code``); the item's ``contraAccount`` (the wallet's account) and, with
vendor-based bookkeeping, its ``vendor.code``. Each kind maps to one kind of Xero code
(:class:`~exports.xero.models.PleoCodeKind`): an ``AccountCode``, a ``TaxType``, a tracking
option (``category/option``), a ``ContactID``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.urls import reverse

from exports.models import (
    Company,
    ExportItemRecord,
    XeroAccount,
    XeroConnection,
    XeroContact,
    XeroMapping,
    XeroTaxRate,
    XeroTrackingOption,
)
from exports.pleo import ItemFailureReasonType
from exports.xero.models import PleoCodeKind

# How many of a company's newest export items the codes seen are read from.
RECENT_ITEMS = 2000

FAILURE_OF_KIND = {
    PleoCodeKind.ACCOUNT: ItemFailureReasonType.ACCOUNT_UNKNOWN,
    PleoCodeKind.CONTRA_ACCOUNT: ItemFailureReasonType.ACCOUNT_UNKNOWN,
    PleoCodeKind.TAX_CODE: ItemFailureReasonType.TAX_CODE_UNKNOWN,
    PleoCodeKind.TAG: ItemFailureReasonType.TAG_UNKNOWN,
    PleoCodeKind.VENDOR: ItemFailureReasonType.VENDOR_UNKNOWN,
}


@dataclass(frozen=True)
class PleoCode:
    kind: PleoCodeKind
    code: str
    label: str = ""


def _text(value: Any) -> str:
    return str(value).strip() if isinstance(value, str | int) else ""


def pleo_codes_of_item(*, item: Mapping[str, Any]) -> list[PleoCode]:
    """Every code ``item`` carries, in order, without repeats."""
    found: dict[tuple[str, str], PleoCode] = {}

    def add(kind: PleoCodeKind, code: str, label: str = "") -> None:
        if code and (kind, code) not in found:
            found[(kind, code)] = PleoCode(kind, code, label)

    def add_account(kind: PleoCodeKind, account: Any) -> None:
        if isinstance(account, Mapping):
            code = _text(account.get("code")) or _text(account.get("identifier"))
            add(kind, code, _text(account.get("name")))

    for line in item.get("accountingEntryLines") or []:
        if not isinstance(line, Mapping):
            continue
        add_account(PleoCodeKind.ACCOUNT, line.get("account"))
        tax = line.get("tax")
        if isinstance(tax, Mapping):
            add(PleoCodeKind.TAX_CODE, _text(tax.get("code")))
        for tag in line.get("tags") or []:
            if isinstance(tag, Mapping) and _text(tag.get("code")):
                add(PleoCodeKind.TAG, f"{_text(tag.get('groupCode'))}/{_text(tag.get('code'))}")
    add_account(PleoCodeKind.CONTRA_ACCOUNT, item.get("contraAccount"))
    vendor = item.get("vendor")
    if isinstance(vendor, Mapping):
        add(PleoCodeKind.VENDOR, _text(vendor.get("code")), _text(vendor.get("name")))
    return list(found.values())


@dataclass(frozen=True)
class SeenCode:
    """A Pleo code found in the company's recent item snapshots, and when it was last seen."""

    kind: PleoCodeKind
    code: str
    label: str
    last_seen_at: datetime

    def get_kind_display(self) -> str:
        return PleoCodeKind(self.kind).label


def pleo_codes_seen(*, company: Company, recent: int = RECENT_ITEMS) -> list[SeenCode]:
    """Every code of the company's ``recent`` newest export items, as we stored them
    (``ExportItemRecord.item_snapshot``: the item as Pleo sent it), sorted by kind and code."""
    records = (
        ExportItemRecord.objects.filter(export_job__company=company)
        .exclude(item_snapshot={})
        .order_by("-id")
        .values_list("item_snapshot", "created_at")[:recent]
    )
    seen: dict[tuple[str, str], SeenCode] = {}
    for snapshot, created_at in records:  # newest first: the first sighting is the last
        for code in pleo_codes_of_item(item=snapshot):
            key = (code.kind, code.code)
            if key not in seen:
                seen[key] = SeenCode(code.kind, code.code, code.label, created_at)
    return sorted(seen.values(), key=lambda c: (c.kind, c.code))


# --- Which Xero codes are valid ---------------------------------------------------------------


def xero_mapping_target_problem(
    *, connection: XeroConnection, kind: str, xero_code: str
) -> str | None:
    """Why ``xero_code`` is no usable target of ``kind`` in the synced data (None when it is)."""
    if kind in (PleoCodeKind.ACCOUNT, PleoCodeKind.CONTRA_ACCOUNT):
        row = XeroAccount.objects.filter(connection=connection, code=xero_code).first()
        what = f"Xero account {xero_code}"
    elif kind == PleoCodeKind.TAX_CODE:
        row = XeroTaxRate.objects.filter(connection=connection, tax_type=xero_code).first()
        what = f"Xero tax type {xero_code}"
    elif kind == PleoCodeKind.TAG:
        category, _, option = xero_code.partition("/")
        row = XeroTrackingOption.objects.filter(
            connection=connection, category_name=category, name=option
        ).first()
        what = f"Xero tracking option {xero_code}"
    else:
        contact_id = _uuid_or_none(xero_code)
        row = (
            XeroContact.objects.filter(connection=connection, contact_id=contact_id).first()
            if contact_id
            else None
        )
        what = f"Xero contact {xero_code}"
        if row is None:
            return f"{what} does not exist in Xero (sync contacts from the connection's page)"
        return None if row.status in ("", "ACTIVE") else f"{what} is {row.status.lower()}"
    if row is None:
        return f"{what} does not exist in Xero"
    if not row.active:
        return f"{what} is not active in Xero"
    return None


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def xero_mapping_page_url() -> str:
    return reverse("admin:exports_xeromapping_changelist")


def xero_mapping_check_item(
    *,
    company: Company,
    connection: XeroConnection,
    item: Mapping[str, Any],
    new_vendors: bool = False,
    memo: dict | None = None,
) -> tuple[ItemFailureReasonType, str] | None:
    """The first code of ``item`` with no valid mapping, as (failure type, message); None when
    every code maps to an active Xero code. With ``new_vendors``, a vendor without a mapping
    passes (booking finds or creates its contact). Reads only. ``memo``, a dict the caller
    keeps for one run (the Xero adapter: one job), remembers what passed (a mapping found, a
    Xero code usable), so a job's items read each once a run, not once an item; what failed
    is read again, so a mapping made meanwhile is seen."""
    memo = {} if memo is None else memo
    codes = pleo_codes_of_item(item=item)
    unread = [c for c in codes if ("mapping", c.kind, c.code) not in memo]
    if unread:
        found = {
            (m.kind, m.pleo_code): m.xero_code
            for m in XeroMapping.objects.filter(company=company).filter(
                Q(pleo_code__in=[c.code for c in unread])
            )
        }
        memo.update({("mapping", *key): xero_code for key, xero_code in found.items() if xero_code})
    for code in codes:
        if code.kind == PleoCodeKind.VENDOR and not item.get("vendor"):
            continue
        xero_code = memo.get(("mapping", code.kind, code.code), "")
        if new_vendors and code.kind == PleoCodeKind.VENDOR and not xero_code:
            continue
        name = PleoCodeKind(code.kind).label.split(" →")[0]
        if not xero_code:
            problem = f"{name} {code.code} has no Xero mapping"
        else:
            target = ("usable", code.kind, xero_code)
            problem = None
            if target not in memo:
                problem = xero_mapping_target_problem(
                    connection=connection, kind=code.kind, xero_code=xero_code
                )
            if problem is None:
                memo[target] = True
                continue
            problem = f"{name} {code.code} is mapped, but {problem}"
        return FAILURE_OF_KIND[PleoCodeKind(code.kind)], (
            f"{problem}. Map it on the Xero mapping page ({xero_mapping_page_url()}) and "
            f"export again."
        )
    return None


# --- Proposals --------------------------------------------------------------------------------


def _proposal(connection: XeroConnection, kind: str, code: str) -> str:
    """The Xero code whose code matches ``code`` (case-insensitively), or ''."""
    if kind in (PleoCodeKind.ACCOUNT, PleoCodeKind.CONTRA_ACCOUNT):
        match = XeroAccount.objects.filter(
            connection=connection, code__iexact=code, status="ACTIVE"
        ).first()
        return match.code if match else ""
    if kind == PleoCodeKind.TAX_CODE:
        match = XeroTaxRate.objects.filter(
            Q(tax_type__iexact=code) | Q(name__iexact=code), connection=connection, status="ACTIVE"
        ).first()
        return match.tax_type if match else ""
    if kind == PleoCodeKind.TAG:
        group, _, option = code.partition("/")
        match = XeroTrackingOption.objects.filter(
            connection=connection, category_name__iexact=group, name__iexact=option
        ).first()
        return f"{match.category_name}/{match.name}" if match and match.active else ""
    match = XeroContact.objects.filter(connection=connection, account_number__iexact=code).first()
    return str(match.contact_id) if match else ""


def xero_mapping_propose(*, company: Company) -> int:
    """A proposed mapping for every code of the company's recent items that has none (or an
    empty proposed one) and whose code matches a Xero code. Mappings an operator edited are never
    touched. Returns the count."""
    connection = XeroConnection.objects.filter(company=company).first()
    if connection is None:
        return 0
    existing = {(m.kind, m.pleo_code): m for m in XeroMapping.objects.filter(company=company)}
    proposed = 0
    for seen in pleo_codes_seen(company=company):
        current = existing.get((seen.kind, seen.code))
        if current is not None and (current.xero_code or not current.proposed):
            continue
        target = _proposal(connection, seen.kind, seen.code)
        if not target:
            continue
        XeroMapping.objects.update_or_create(
            company=company,
            kind=seen.kind,
            pleo_code=seen.code[:200],
            defaults={"xero_code": target, "proposed": True},
        )
        proposed += 1
    return proposed


def xero_mapping_unmapped(*, company: Company) -> list[dict]:
    """Every Pleo code of ``company``'s recent items with no valid mapping: the code
    (:class:`SeenCode`), its mapping if any, and why it is not valid."""
    connection = XeroConnection.objects.filter(company=company).first()
    mappings = {(m.kind, m.pleo_code): m for m in XeroMapping.objects.filter(company=company)}
    rows = []
    for seen in pleo_codes_seen(company=company):
        mapping = mappings.get((seen.kind, seen.code))
        if mapping is None or not mapping.xero_code:
            why = "no mapping"
        elif connection is None:
            why = "not connected to Xero"
        else:
            why = xero_mapping_target_problem(
                connection=connection, kind=seen.kind, xero_code=mapping.xero_code
            )
            if why is None:
                continue
        rows.append({"seen": seen, "mapping": mapping, "why": why})
    return rows
