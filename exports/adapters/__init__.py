"""Accounting adapters: where the export lifecycle books Pleo's export items.

Each company names its adapter in ``Company.accounting_adapter`` (a key of :data:`ADAPTERS`,
default ``journal``, chosen in the admin). The interface is documented in
:mod:`exports.adapters.base`; the built-in ``journal`` adapter (:mod:`exports.adapters.journal`)
books into a local double-entry journal and needs no configuration.

Adding a real ERP (Xero, e-conomic, Fortnox, DATEV, …) is one module and one line here; the
lifecycle is not touched:

1. Create ``exports/adapters/<erp>.py`` with a subclass of
   :class:`~exports.adapters.base.AccountingAdapter`: set ``name`` (the registry key), ``label``
   (shown to operators and in failure messages), ``supports_vendor_based_bookkeeping`` and
   ``attachment_limits``; implement ``validate`` (call ``super().validate(job)`` first),
   ``book`` and, where the ERP can do them, ``precheck``, ``book_batch`` and ``lookup`` (by the
   idempotency key you gave the ERP as a reference, and by Pleo's ``accountingEntryId``). Read
   the company's ERP settings in ``__init__`` (``self.company``). While it cannot book yet, set
   ``selectable = False``: it is registered (and testable) but not offered for companies, and
   its ``validate`` refuses every job.
2. Import it here and add it to :data:`BUILT_IN`. Once selectable, it appears in the Company
   admin's "Accounting adapter" select.

Leave ``writes_locally`` False for anything that calls out over the network.
"""

from __future__ import annotations

from typing import Any

from exports.adapters.base import (
    PLEO_ATTACHMENT_LIMITS,
    AccountingAdapter,
    AdapterUnavailable,
    AttachmentLimit,
    AttachmentLimits,
    AttachmentProblem,
    BookingRequest,
    BookingResult,
    CallEstimate,
    CallRoom,
    ItemCheck,
    LedgerDocument,
    LedgerSummary,
    LookupUnsupported,
    ReadBackUnavailable,
    ReadBackUnsupported,
    ReceiptFile,
    UnknownAdapter,
    ValidationResult,
)
from exports.adapters.journal import JournalAdapter
from exports.adapters.xero import XeroAdapter

# Every adapter shipped with the bridge; a new one joins here.
BUILT_IN: tuple[type[AccountingAdapter], ...] = (JournalAdapter, XeroAdapter)

DEFAULT_ADAPTER = JournalAdapter.name

ADAPTERS: dict[str, type[AccountingAdapter]] = {}


def register_adapter(cls: type[AccountingAdapter]) -> type[AccountingAdapter]:
    """Add ``cls`` to :data:`ADAPTERS` under its ``name`` (usable as a class decorator)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name to register it under.")
    registered = ADAPTERS.setdefault(cls.name, cls)
    if registered is not cls:
        raise ValueError(f"An adapter is already registered as '{cls.name}'.")
    return cls


for _adapter in BUILT_IN:
    register_adapter(_adapter)


def get_adapter(name: str, *, company: Any, job: Any = None) -> AccountingAdapter:
    """The adapter registered as ``name`` (selectable or not), bound to ``company`` and ``job``."""
    try:
        cls = ADAPTERS[name or DEFAULT_ADAPTER]
    except KeyError:
        raise UnknownAdapter(name) from None
    return cls(company=company, job=job)


def adapter_choices() -> list[tuple[str, str]]:
    """(key, label) of every selectable registered adapter, for the admin's select."""
    return [
        (key, f"{key} ({cls.label})" if cls.label else key)
        for key, cls in ADAPTERS.items()
        if cls.selectable
    ]


__all__ = [
    "ADAPTERS",
    "BUILT_IN",
    "DEFAULT_ADAPTER",
    "PLEO_ATTACHMENT_LIMITS",
    "AccountingAdapter",
    "AdapterUnavailable",
    "AttachmentLimit",
    "AttachmentLimits",
    "AttachmentProblem",
    "BookingRequest",
    "BookingResult",
    "CallEstimate",
    "CallRoom",
    "ItemCheck",
    "JournalAdapter",
    "LedgerDocument",
    "LedgerSummary",
    "LookupUnsupported",
    "ReadBackUnavailable",
    "ReadBackUnsupported",
    "ReceiptFile",
    "UnknownAdapter",
    "ValidationResult",
    "XeroAdapter",
    "adapter_choices",
    "get_adapter",
    "register_adapter",
]
