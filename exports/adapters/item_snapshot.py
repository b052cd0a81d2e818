"""The stored snapshot of an export item: the item as Pleo sent it at booking time, redacted.

Kept on ``ExportItemRecord.item_snapshot`` so that a job's audit pack
(``exports.receipts.pack``) reads what was booked without asking Pleo again (Pleo serves an item
only while its job is open, §3.8). The redaction follows the rules the built-in journal applies
(``exports.adapters.journal``: "never copied anywhere"):

* ``files``: each file keeps its declared ``type`` and ``size`` and its URL's host and path; the
  URL itself (signed: its query string is a credential, valid 24 hours) is dropped;
* ``additionalInformation.attendees`` and ``invoiceInformation.supplierBankAccount`` (bank
  details) are dropped;
* ``user`` (the employee) is dropped: the only names kept are those the bookkeeping uses (the
  supplier, the vendor, the team, the accounts);
* a key this module does not know (a field Pleo adds later) is dropped too. Every dropped field
  that held something is named in ``_redacted``, so what is missing is visible.

Everything else (amounts, lines, accounts, tax, dates, note, supplier, vendor, team, links) is
kept exactly as received.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

REDACTED_KEY = "_redacted"

# ExportItemV3's keys (§3.8) kept as received; ``files`` and ``additionalInformation`` are
# rewritten below, ``user`` is dropped.
KEPT = frozenset(
    {
        "_links",
        "accountingEntryId",
        "accountingEntryLines",
        "amount",
        "bookkeeping",
        "companyId",
        "contraAccount",
        "date",
        "note",
        "servicePeriod",
        "subType",
        "supplier",
        "team",
        "type",
        "vendor",
    }
)
KEPT_INFORMATION = frozenset({"reconciliationId", "reconciledEntries"})
DROPPED_INVOICE_FIELDS = frozenset({"supplierBankAccount"})


def _file(entry: Any) -> dict:
    if not isinstance(entry, Mapping):
        return {}
    kept = {key: entry[key] for key in ("type", "size") if key in entry}
    url = entry.get("url")
    if isinstance(url, str) and url:
        parts = urlsplit(url)
        kept.update(host=parts.hostname or "", path=parts.path)
    return kept


def item_snapshot(item: Mapping[str, Any] | None) -> dict:
    """``item`` (Pleo's raw ExportItemV3) redacted as the module docstring says; a new dict."""
    if not isinstance(item, Mapping):
        return {}
    redacted: set[str] = set()
    snapshot: dict[str, Any] = {}
    for key, value in item.items():
        if key in KEPT:
            snapshot[key] = copy.deepcopy(value)
        elif key == "files" and isinstance(value, list):
            snapshot["files"] = [_file(entry) for entry in value]
            if any(isinstance(entry, Mapping) and entry.get("url") for entry in value):
                redacted.add("files[].url")
        elif key == "additionalInformation" and isinstance(value, Mapping):
            snapshot[key] = _information(value, redacted)
        elif value not in (None, [], {}, ""):
            redacted.add(str(key))
    if redacted:
        snapshot[REDACTED_KEY] = sorted(redacted)
    return snapshot


def _information(info: Mapping[str, Any], redacted: set[str]) -> dict:
    kept: dict[str, Any] = {}
    for key, value in info.items():
        if key in KEPT_INFORMATION:
            kept[key] = copy.deepcopy(value)
        elif key == "invoiceInformation" and isinstance(value, Mapping):
            kept[key] = {
                k: copy.deepcopy(v) for k, v in value.items() if k not in DROPPED_INVOICE_FIELDS
            }
            redacted.update(
                f"additionalInformation.invoiceInformation.{k}"
                for k, v in value.items()
                if k in DROPPED_INVOICE_FIELDS and v is not None
            )
        elif key == "invoiceInformation" and value is None:
            kept[key] = None
        elif value not in (None, [], {}, ""):
            redacted.add(f"additionalInformation.{key}")
    return kept
