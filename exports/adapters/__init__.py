"""Accounting adapters: where the export lifecycle books Pleo's export items.

Each company names its adapter in ``Company.accounting_adapter`` (a key of :data:`ADAPTERS`,
default ``journal``, chosen in the admin). The interface is documented in
:mod:`exports.adapters.base`; the built-in ``journal`` adapter (:mod:`exports.adapters.journal`)
books into a local double-entry journal and needs no configuration.

Adding a real ERP (Xero, e-conomic, Fortnox, DATEV, …) is one module and one registry entry:

1. Create ``exports/adapters/<erp>.py`` with a subclass of
   :class:`~exports.adapters.base.AccountingAdapter`: set ``name`` (the registry key), ``label``
   (shown to operators and in failure messages) and ``supports_vendor_based_bookkeeping``;
   implement ``validate`` (call ``super().validate(job)`` first), ``export`` and, if the ERP can
   find a booking by a reference you gave it, ``lookup``. Pass the idempotency key to the ERP as
   that reference. Read the company's ERP settings in ``__init__`` (``self.company``).
2. Import it here and add it to :data:`ADAPTERS`. It then appears in the Company admin's
   "Accounting adapter" select.

Leave ``writes_locally`` False for anything that calls out over the network.
"""

from __future__ import annotations

from typing import Any

from exports.adapters.base import (
    AccountingAdapter,
    AdapterUnavailable,
    BookingResult,
    LookupUnsupported,
    UnknownAdapter,
    ValidationResult,
)
from exports.adapters.journal import JournalAdapter

DEFAULT_ADAPTER = JournalAdapter.name

ADAPTERS: dict[str, type[AccountingAdapter]] = {
    JournalAdapter.name: JournalAdapter,
}


def get_adapter(name: str, *, company: Any, job: Any = None) -> AccountingAdapter:
    """The adapter registered as ``name``, bound to ``company`` (and ``job``)."""
    try:
        cls = ADAPTERS[name or DEFAULT_ADAPTER]
    except KeyError:
        raise UnknownAdapter(name) from None
    return cls(company=company, job=job)


def adapter_choices() -> list[tuple[str, str]]:
    """(key, label) of every registered adapter, for the admin's select."""
    return [(key, f"{key} ({cls.label})" if cls.label else key) for key, cls in ADAPTERS.items()]


__all__ = [
    "ADAPTERS",
    "DEFAULT_ADAPTER",
    "AccountingAdapter",
    "AdapterUnavailable",
    "BookingResult",
    "JournalAdapter",
    "LookupUnsupported",
    "UnknownAdapter",
    "ValidationResult",
    "adapter_choices",
    "get_adapter",
]
