"""The Xero endpoints the product reads: ``/connections`` (Identity) and, for one tenant, the
Accounting API's Organisation, Accounts, TaxRates, TrackingCategories and Contacts
(docs/xero-openapi/), and the documents it books (ManualJournals, Invoices, CreditNotes: one by
id, or every one a ``where`` selects, page by page), with the writes. Every call goes through
:class:`~exports.xero.transport.XeroTransport`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from exports.pleo.connection import ClientConfig
from exports.xero.errors import XeroNotFound, XeroResponseError
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
# Documents read by a ``where`` (``documents_paged``): Xero's page of 100 (with their lines: Xero
# shows a list's lines only when it is paged), and a bound on how many pages one read follows.
DOCUMENT_PAGE_SIZE = 100
MAX_DOCUMENT_PAGES = 20


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

    # --- Documents (manual journals, bills, credit notes), contacts, attachments: the writes ---

    def documents(self, kind: str, *, where: str) -> list[dict]:
        """``GET /<kind>?where=…`` (``ManualJournals``, ``Invoices``, ``CreditNotes``)."""
        return items_of(self.accounting_json(kind, {"where": where}), kind)

    def documents_paged(
        self, kind: str, *, where: str, page_size: int = DOCUMENT_PAGE_SIZE
    ) -> list[dict]:
        """``GET /<kind>?where=…&page=N&pageSize=…``, page after page until one is not full (at
        most ``MAX_DOCUMENT_PAGES``): every document ``where`` selects, each with its lines."""
        found: list[dict] = []
        for page in range(1, MAX_DOCUMENT_PAGES + 1):
            params = {"where": where, "page": page, "pageSize": page_size}
            batch = items_of(self.accounting_json(kind, params), kind)
            found.extend(batch)
            if len(batch) < page_size:
                return found
        raise XeroResponseError(f"more than {MAX_DOCUMENT_PAGES} pages of {kind}")

    def document(self, kind: str, document_id: Any) -> dict | None:
        """One document by id; None when Xero does not know it (404)."""
        try:
            found = items_of(self.accounting_json(f"{kind}/{document_id}"), kind)
        except XeroNotFound:
            return None
        return found[0] if found else None

    def put_documents(self, kind: str, elements: list[dict], *, idempotency_key: str) -> list:
        """Create documents in one call (``summarizeErrors=false``: every element comes back,
        saved or with its ``ValidationErrors``), in the order sent."""
        body = self.write(
            "PUT",
            f"{ACCOUNTING_PATH}/{kind}",
            idempotency_key=idempotency_key,
            json={kind: elements},
            params={"summarizeErrors": "false"},
        )
        answered = items_of(body, kind)
        if len(answered) != len(elements):
            raise XeroResponseError(
                f"malformed response: {len(answered)} {kind} for {len(elements)} sent"
            )
        return answered

    def contacts_where(self, where: str) -> list[Contact]:
        return self._list("Contacts", "Contacts", Contact.from_api, {"where": where})

    def create_contact(self, element: dict, *, idempotency_key: str) -> Contact:
        body = self.write(
            "PUT",
            f"{ACCOUNTING_PATH}/Contacts",
            idempotency_key=idempotency_key,
            json={"Contacts": [element]},
        )
        return Contact.from_api(items_of(body, "Contacts")[0], "Contacts[0]")

    def attach(
        self,
        kind: str,
        document_id: Any,
        file_name: str,
        content: bytes,
        *,
        content_type: str,
        idempotency_key: str,
    ) -> None:
        params = {"IncludeOnline": "true"} if kind != "ManualJournals" else None
        self.write(
            "PUT",
            f"{ACCOUNTING_PATH}/{kind}/{document_id}/Attachments/{quote(file_name, safe='')}",
            idempotency_key=idempotency_key,
            raw=content,
            content_type=content_type,
            params=params,
        )


__all__ = ["XeroClient", "config_from_settings"]
