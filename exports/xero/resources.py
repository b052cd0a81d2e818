"""What the Xero client reads, parsed: one frozen dataclass per resource, built by ``from_api``
from Xero's JSON (docs/xero-openapi/xero_accounting.yaml and xero-identity.yaml; the field names
are Xero's, PascalCase in the Accounting API, camelCase in /connections). Only the fields the
product relies on are read; a missing required one is a :class:`XeroResponseError`. Each field
is read by one ``from_api`` (``_Resource``: the key from the field's name, the reader from its
type).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, Self, get_type_hints

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


def _xero(*, key: str = "", read: Callable[[Any, str, str], Any] | None = None) -> Any:
    """A field whose Xero ``key`` or reader (``read(data, key, where)``) is not the default."""
    return field(metadata={"xero": (key, read)})


class _Resource:
    """``from_api`` for the dataclasses below. Each field is read from Xero's key of the same
    name in PascalCase, ``Id`` as ``ID`` (``account_id`` from ``AccountID``; camelCase when
    ``CAMEL_CASE``, as in ``/connections``), by its type (:data:`_READERS`), unless the field
    names its key or reader (:func:`_xero`). ``where`` names the object in errors (``WHERE``,
    else the class name)."""

    WHERE = ""
    CAMEL_CASE = False

    @classmethod
    def key(cls, name: str) -> str:
        first, *rest = name.split("_")
        if cls.CAMEL_CASE:
            return first + "".join(part.capitalize() for part in rest)
        key = "".join(part.capitalize() for part in (first, *rest))
        return key[:-2] + "ID" if key.endswith("Id") else key

    @classmethod
    def from_api(cls, data: Any, where: str = "") -> Self:
        where = where or cls.WHERE or cls.__name__
        types = _type_hints(cls)
        values = {}
        for f in fields(cls):  # type: ignore[arg-type]
            key, read = f.metadata.get("xero", ("", None))
            read = read or _READERS[types[f.name]]
            values[f.name] = read(data, key or cls.key(f.name), where)
        return cls(**values)


_type_hints = cache(get_type_hints)
_READERS: dict[Any, Callable[[Any, str, str], Any]] = {
    uuid.UUID: _uuid,
    str: _text,
    date | None: _date,
    Decimal | None: _decimal,
}


@dataclass(frozen=True)
class Connection(_Resource):
    """One organisation a token may reach (``GET /connections``)."""

    WHERE = "connection"
    CAMEL_CASE = True

    id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_name: str
    tenant_type: str


@dataclass(frozen=True)
class Organisation(_Resource):
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


@dataclass(frozen=True)
class Account(_Resource):
    account_id: uuid.UUID
    code: str
    name: str
    type: str
    status: str
    tax_type: str


@dataclass(frozen=True)
class TaxRate(_Resource):
    tax_type: str = _xero(read=_required_text)
    name: str
    status: str
    effective_rate: Decimal | None


@dataclass(frozen=True)
class TrackingOption(_Resource):
    option_id: uuid.UUID = _xero(key="TrackingOptionID")
    name: str = _xero(read=_required_text)
    status: str


def _options(data: Any, key: str, where: str) -> tuple[TrackingOption, ...]:
    options = _field(data, key, where, required=False) or []
    if not isinstance(options, list):
        raise XeroResponseError(f"malformed response: {where}.{key} is not a list")
    return tuple(
        TrackingOption.from_api(option, f"{where}.{key}[{i}]") for i, option in enumerate(options)
    )


@dataclass(frozen=True)
class TrackingCategory(_Resource):
    category_id: uuid.UUID = _xero(key="TrackingCategoryID")
    name: str = _xero(read=_required_text)
    status: str
    options: tuple[TrackingOption, ...] = _xero(read=_options)


@dataclass(frozen=True)
class Contact(_Resource):
    contact_id: uuid.UUID
    name: str
    status: str = _xero(key="ContactStatus")
    account_number: str


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
