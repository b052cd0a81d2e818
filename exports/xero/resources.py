"""What the Xero client reads, parsed: one frozen dataclass per resource, built by ``from_api``
from Xero's JSON (docs/xero-openapi/xero_accounting.yaml and xero-identity.yaml; the field names
are Xero's, PascalCase in the Accounting API, camelCase in /connections). Only the fields the
product relies on are read; a missing required one is a :class:`XeroResponseError`. Each field
names its Xero key and how it is read (``_xero``); one ``from_api`` reads them all.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Self

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


def _date(data: Any, key: str, where: str) -> date | None:
    return xero_date(_field(data, key, where, required=False))


def _required_text(data: Any, key: str, where: str) -> str:
    return _text(data, key, where, required=True)


def _decimal(data: Any, key: str, where: str) -> Decimal | None:
    value = _field(data, key, where, required=False)
    try:
        return None if value is None else Decimal(str(value))
    except InvalidOperation:
        raise XeroResponseError(f"malformed response: {where}.{key}") from None


def _xero(key: str, parse: Callable[[Any, str, str], Any] = _text) -> Any:
    """A field read from Xero's ``key`` by ``parse(data, key, where)`` (text by default)."""
    return field(metadata={"xero": (key, parse)})


class _Resource:
    """``from_api`` for a dataclass whose fields say where Xero keeps them (:func:`_xero`);
    ``where`` names the object in errors (the class name unless given)."""

    WHERE = ""

    @classmethod
    def from_api(cls, data: Any, where: str = "") -> Self:
        where = where or cls.WHERE or cls.__name__
        values = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if "xero" in f.metadata:
                key, parse = f.metadata["xero"]
                values[f.name] = parse(data, key, where)
        return cls(**values)


@dataclass(frozen=True)
class Connection(_Resource):
    """One organisation a token may reach (``GET /connections``)."""

    WHERE = "connection"

    id: uuid.UUID = _xero("id", _uuid)
    tenant_id: uuid.UUID = _xero("tenantId", _uuid)
    tenant_name: str = _xero("tenantName")
    tenant_type: str = _xero("tenantType")


@dataclass(frozen=True)
class Organisation(_Resource):
    organisation_id: uuid.UUID = _xero("OrganisationID", _uuid)
    name: str = _xero("Name")
    base_currency: str = _xero("BaseCurrency")
    country_code: str = _xero("CountryCode")
    period_lock_date: date | None = _xero("PeriodLockDate", _date)
    end_of_year_lock_date: date | None = _xero("EndOfYearLockDate", _date)

    @property
    def lock_date(self) -> date | None:
        """The later of the two lock dates: nothing on or before it may be posted."""
        dates = [d for d in (self.period_lock_date, self.end_of_year_lock_date) if d]
        return max(dates) if dates else None


@dataclass(frozen=True)
class Account(_Resource):
    account_id: uuid.UUID = _xero("AccountID", _uuid)
    code: str = _xero("Code")
    name: str = _xero("Name")
    type: str = _xero("Type")
    status: str = _xero("Status")
    tax_type: str = _xero("TaxType")


@dataclass(frozen=True)
class TaxRate(_Resource):
    tax_type: str = _xero("TaxType", _required_text)
    name: str = _xero("Name")
    status: str = _xero("Status")
    effective_rate: Decimal | None = _xero("EffectiveRate", _decimal)


@dataclass(frozen=True)
class TrackingOption(_Resource):
    option_id: uuid.UUID = _xero("TrackingOptionID", _uuid)
    name: str = _xero("Name", _required_text)
    status: str = _xero("Status")


def _options(data: Any, key: str, where: str) -> tuple[TrackingOption, ...]:
    options = _field(data, key, where, required=False) or []
    if not isinstance(options, list):
        raise XeroResponseError(f"malformed response: {where}.{key} is not a list")
    return tuple(
        TrackingOption.from_api(option, f"{where}.{key}[{i}]") for i, option in enumerate(options)
    )


@dataclass(frozen=True)
class TrackingCategory(_Resource):
    category_id: uuid.UUID = _xero("TrackingCategoryID", _uuid)
    name: str = _xero("Name", _required_text)
    status: str = _xero("Status")
    options: tuple[TrackingOption, ...] = _xero("Options", _options)


@dataclass(frozen=True)
class Contact(_Resource):
    contact_id: uuid.UUID = _xero("ContactID", _uuid)
    name: str = _xero("Name")
    status: str = _xero("ContactStatus")
    account_number: str = _xero("AccountNumber")


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
