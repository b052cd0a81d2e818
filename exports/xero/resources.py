"""What the Xero client reads, parsed: one frozen dataclass per resource, built by ``from_api``
from Xero's JSON (docs/xero-openapi/xero_accounting.yaml and xero-identity.yaml; the field names
are Xero's, PascalCase in the Accounting API, camelCase in /connections). Only the fields the
product relies on are read; a missing required one is a :class:`XeroResponseError`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from exports.xero.errors import XeroResponseError


def _field(data: Any, key: str, where: str, *, required: bool = True) -> Any:
    if not isinstance(data, dict):
        raise XeroResponseError(f"malformed response: {where} is not an object")
    value = data.get(key)
    if required and (value is None or value == ""):
        raise XeroResponseError(f"malformed response: {where}.{key} is missing")
    return value


def _uuid(data: Any, key: str, where: str) -> uuid.UUID:
    value = _field(data, key, where)
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise XeroResponseError(f"malformed response: {where}.{key} is not a UUID") from None


def _text(data: Any, key: str, where: str, *, required: bool = False) -> str:
    value = _field(data, key, where, required=required)
    return "" if value is None else str(value)


def items_of(body: Any, key: str) -> list:
    """The list under ``key`` of an Accounting API answer (``{"Accounts": [...]}``)."""
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise XeroResponseError(f"malformed response: no '{key}' list")
    return body[key]


@dataclass(frozen=True)
class Connection:
    """One organisation a token may reach (``GET /connections``)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_name: str
    tenant_type: str

    @classmethod
    def from_api(cls, data: Any, where: str = "connection") -> Connection:
        return cls(
            id=_uuid(data, "id", where),
            tenant_id=_uuid(data, "tenantId", where),
            tenant_name=_text(data, "tenantName", where),
            tenant_type=_text(data, "tenantType", where),
        )


_MS_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")


def xero_date(value: Any) -> date | None:
    """A date of Xero's JSON: ``/Date(1796083200000+0000)/`` or ``YYYY-MM-DD[T…]``; None when
    absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    match = _MS_DATE.fullmatch(value.strip())
    if match:
        return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC).date()
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


@dataclass(frozen=True)
class Organisation:
    organisation_id: uuid.UUID
    name: str
    base_currency: str
    country_code: str
    period_lock_date: date | None = None
    end_of_year_lock_date: date | None = None

    @property
    def lock_date(self) -> date | None:
        """The later of the two lock dates: nothing on or before it may be posted."""
        dates = [d for d in (self.period_lock_date, self.end_of_year_lock_date) if d]
        return max(dates) if dates else None

    @classmethod
    def from_api(cls, data: Any, where: str = "Organisation") -> Organisation:
        return cls(
            organisation_id=_uuid(data, "OrganisationID", where),
            name=_text(data, "Name", where),
            base_currency=_text(data, "BaseCurrency", where),
            country_code=_text(data, "CountryCode", where),
            period_lock_date=xero_date(data.get("PeriodLockDate")),
            end_of_year_lock_date=xero_date(data.get("EndOfYearLockDate")),
        )


@dataclass(frozen=True)
class Account:
    account_id: uuid.UUID
    code: str
    name: str
    type: str
    status: str
    tax_type: str

    @classmethod
    def from_api(cls, data: Any, where: str = "Account") -> Account:
        return cls(
            account_id=_uuid(data, "AccountID", where),
            code=_text(data, "Code", where),
            name=_text(data, "Name", where),
            type=_text(data, "Type", where),
            status=_text(data, "Status", where),
            tax_type=_text(data, "TaxType", where),
        )


@dataclass(frozen=True)
class TaxRate:
    tax_type: str
    name: str
    status: str
    effective_rate: Decimal | None

    @classmethod
    def from_api(cls, data: Any, where: str = "TaxRate") -> TaxRate:
        rate = _field(data, "EffectiveRate", where, required=False)
        try:
            effective = None if rate is None else Decimal(str(rate))
        except InvalidOperation:
            raise XeroResponseError(f"malformed response: {where}.EffectiveRate") from None
        return cls(
            tax_type=_text(data, "TaxType", where, required=True),
            name=_text(data, "Name", where),
            status=_text(data, "Status", where),
            effective_rate=effective,
        )


@dataclass(frozen=True)
class TrackingOption:
    option_id: uuid.UUID
    name: str
    status: str


@dataclass(frozen=True)
class TrackingCategory:
    category_id: uuid.UUID
    name: str
    status: str
    options: tuple[TrackingOption, ...]

    @classmethod
    def from_api(cls, data: Any, where: str = "TrackingCategory") -> TrackingCategory:
        options = _field(data, "Options", where, required=False) or []
        if not isinstance(options, list):
            raise XeroResponseError(f"malformed response: {where}.Options is not a list")
        return cls(
            category_id=_uuid(data, "TrackingCategoryID", where),
            name=_text(data, "Name", where, required=True),
            status=_text(data, "Status", where),
            options=tuple(
                TrackingOption(
                    option_id=_uuid(option, "TrackingOptionID", f"{where}.Options[{i}]"),
                    name=_text(option, "Name", f"{where}.Options[{i}]", required=True),
                    status=_text(option, "Status", f"{where}.Options[{i}]"),
                )
                for i, option in enumerate(options)
            ),
        )


@dataclass(frozen=True)
class Contact:
    contact_id: uuid.UUID
    name: str
    status: str
    account_number: str

    @classmethod
    def from_api(cls, data: Any, where: str = "Contact") -> Contact:
        return cls(
            contact_id=_uuid(data, "ContactID", where),
            name=_text(data, "Name", where),
            status=_text(data, "ContactStatus", where),
            account_number=_text(data, "AccountNumber", where),
        )


__all__ = [
    "Account",
    "Connection",
    "Contact",
    "Organisation",
    "TaxRate",
    "TrackingCategory",
    "TrackingOption",
    "items_of",
    "xero_date",
]
