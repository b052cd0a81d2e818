"""Reads of the receipt archive for pages: a journal entry's receipts, a receipt to download.

A journal entry and its receipts meet on the company and Pleo's ``accountingEntryId``: the
receipts of every export of that accounting entry (one job, or a later job that found the entry
already booked). A file exported twice is shown once (the earliest row of each SHA-256).
"""

from __future__ import annotations

from exports.models import Receipt
from exports.selectors.company_access import queryset_for_user

DOWNLOAD_RECEIPT = "exports.download_receipt"


def receipts_of_entry(entry) -> list[Receipt]:
    """``entry``'s receipts, one per file, in the order Pleo listed them."""
    rows = Receipt.objects.filter(
        company_id=entry.company_id, accounting_entry_id=entry.accounting_entry_id
    ).order_by("position", "pk")
    return distinct_files(rows)


def distinct_files(receipts) -> list[Receipt]:
    seen: set[str] = set()
    kept = []
    for receipt in receipts:
        if receipt.sha256 not in seen:
            seen.add(receipt.sha256)
            kept.append(receipt)
    return kept


def may_download_receipts(*, user) -> bool:
    return user.is_active and user.has_perm(DOWNLOAD_RECEIPT)


def receipt_for_download(*, user, receipt_id) -> Receipt | None:
    """The receipt ``receipt_id`` when ``user`` may see its company; None otherwise (also for an
    id that is not a number). The permission is checked by the caller (the view says 403)."""
    try:
        pk = int(str(receipt_id))
    except ValueError:
        return None
    return queryset_for_user(queryset=Receipt.objects.all(), user=user).filter(pk=pk).first()
