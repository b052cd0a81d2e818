"""The Xero endpoints the product reads: ``/connections`` (Identity) and, for one tenant, the
Accounting API's Organisation, Accounts, TaxRates, TrackingCategories and Contacts
(docs/xero-openapi/). Every call goes through :class:`~exports.xero.transport.XeroTransport`.
"""

from __future__ import annotations

from typing import Any

from exports.pleo.connection import ClientConfig
from exports.xero.errors import XeroResponseError
from exports.xero.resources import (
    Account,
    Connection,
    Contact,
    Organisation,
    TaxRate,
    TrackingCategory,
    items_of,
)
from exports.xero.transport import ACCOUNTING_PATH, XeroTransport

# Xero pages contacts 100 at a time (``page=1..``); a bound on how many we read.
CONTACT_PAGE_SIZE = 100
MAX_CONTACT_PAGES = 100


def config_from_settings() -> ClientConfig:
    """``XERO_API_BASE_URL`` with the client's default timeouts and retry bounds."""
    from django.conf import settings

    return ClientConfig(base_url=settings.XERO_API_BASE_URL)


class XeroClient(XeroTransport):
    """The reads; ``tenant_id`` must be set for every call but :meth:`connections`."""

    def connections(self) -> list[Connection]:
        body = self._get_json("/connections")
        if not isinstance(body, list):
            raise XeroResponseError("malformed response: /connections is not a list")
        return [Connection.from_api(item, f"connections[{i}]") for i, item in enumerate(body)]

    def accounting_json(self, resource: str, params: dict[str, Any] | None = None) -> Any:
        """The raw JSON of ``GET /api.xro/2.0/<resource>`` (the contract check reads it)."""
        return self._get_json(f"{ACCOUNTING_PATH}/{resource}", params)

    def _list(self, resource: str, key: str, parse, params=None) -> list:
        path = f"{ACCOUNTING_PATH}/{resource}"
        body = self.accounting_json(resource, params)
        return self._parse(
            "GET",
            path,
            body,
            lambda b: [parse(item, f"{key}[{i}]") for i, item in enumerate(items_of(b, key))],
        )

    def organisation(self) -> Organisation:
        organisations = self._list("Organisation", "Organisations", Organisation.from_api)
        if not organisations:
            raise XeroResponseError("malformed response: no organisation")
        return organisations[0]

    def accounts(self) -> list[Account]:
        return self._list("Accounts", "Accounts", Account.from_api)

    def tax_rates(self) -> list[TaxRate]:
        return self._list("TaxRates", "TaxRates", TaxRate.from_api)

    def tracking_categories(self) -> list[TrackingCategory]:
        return self._list(
            "TrackingCategories",
            "TrackingCategories",
            TrackingCategory.from_api,
            {"includeArchived": "true"},
        )

    def contacts(self) -> list[Contact]:
        """Every contact, page by page (at most ``MAX_CONTACT_PAGES``)."""
        found: list[Contact] = []
        for page in range(1, MAX_CONTACT_PAGES + 1):
            batch = self._list("Contacts", "Contacts", Contact.from_api, {"page": page})
            found.extend(batch)
            if len(batch) < CONTACT_PAGE_SIZE:
                return found
        raise XeroResponseError(f"more than {MAX_CONTACT_PAGES} pages of contacts")


__all__ = ["XeroClient", "config_from_settings"]
