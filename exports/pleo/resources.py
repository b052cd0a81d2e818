"""What Pleo's answers are read into, and what our requests are built from.

One frozen dataclass per Pleo schema (``ExportJobV3``, ``ExportJobItemV3``, ``ExportItemV3``,
``SubscriptionModel``, ...), each with a ``from_api`` parser; :class:`ItemUpdate` is the one
request body with values to check (``to_api``). Parsing is tolerant where Pleo may grow (an
unknown status or failure type reads as the enum's ``UNKNOWN``, :mod:`exports.pleo.enums`) and
strict where a wrong answer must not pass: a missing field, a wrong type, an id that is not a
UUID raises :class:`~exports.pleo.errors.PleoResponseError` naming the field's path, never
quoting the body. No HTTP here: :mod:`exports.pleo.client` calls these.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from exports.pleo.enums import (
    TERMINAL_JOB_STATUSES,
    ItemFailureReasonType,
    ItemStatus,
    JobFailureReasonType,
    JobStatus,
    SubscriptionStatus,
    implied_failure_type,
    read_enum,
    read_failure_type,
    read_job_status,
    refuse_unknown,
)
from exports.pleo.errors import PleoResponseError


class _Reader:
    """Typed access to one JSON object; every complaint names the field's path."""

    def __init__(self, obj: Any, where: str) -> None:
        if not isinstance(obj, dict):
            raise _malformed(f"{where}: expected an object, got {_json_type(obj)}")
        self.obj = obj
        self.where = where

    def _get(self, key: str, required: bool) -> Any:
        value = self.obj.get(key)
        if value is None and required:
            raise _malformed(f"{self.where}.{key}: missing required field")
        return value

    def _wrong(self, key: str, expected: str, value: Any) -> PleoResponseError:
        return _malformed(f"{self.where}.{key}: expected {expected}, got {_json_type(value)}")

    def string(self, key: str, *, required: bool = True) -> Any:
        value = self._get(key, required)
        if value is not None and not isinstance(value, str):
            raise self._wrong(key, "a string", value)
        return value

    def boolean(self, key: str) -> bool:
        value = self._get(key, True)
        if not isinstance(value, bool):
            raise self._wrong(key, "a boolean", value)
        return value

    def integer(self, key: str) -> int:
        value = self._get(key, True)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(key, "an integer", value)
        return value

    def identifier(self, key: str, *, required: bool = True) -> Any:
        value = self.string(key, required=required)
        if value is None:
            return None
        try:
            return uuid.UUID(value)
        except ValueError:
            raise _malformed(f"{self.where}.{key}: not a UUID") from None

    def timestamp(self, key: str, *, required: bool = True) -> Any:
        value = self.string(key, required=required)
        return None if value is None else _parse_timestamp(value, f"{self.where}.{key}")

    def choice(self, key: str, enum_cls: type[enum.StrEnum]) -> Any:
        value = self.string(key)
        try:
            return enum_cls(value)
        except ValueError:
            allowed = ", ".join(member.value for member in enum_cls)
            raise _malformed(
                f"{self.where}.{key}: unknown value {value[:50]!r} (expected one of {allowed})"
            ) from None

    def array(self, key: str) -> list[Any]:
        value = self._get(key, True)
        if not isinstance(value, list):
            raise self._wrong(key, "an array", value)
        return value


class _StatusAndFailure:
    """What a job and an item share: ``raw_status`` defaults to the status' value (when built
    by hand), and ``failure_type`` reads ``failure_reason_type`` against ``FAILURE_TYPES``."""

    FAILURE_TYPES: type[enum.Enum]
    status: enum.Enum
    raw_status: str
    failure_reason_type: str | None

    def __post_init__(self) -> None:
        if not self.raw_status:
            object.__setattr__(self, "raw_status", str(self.status))

    @property
    def failure_type(self) -> Any:
        """``failure_reason_type`` read against the enum (``UNKNOWN`` when we do not know it)."""
        return read_failure_type(self.FAILURE_TYPES, self.failure_reason_type)


@dataclass(frozen=True)
class ExportJob(_StatusAndFailure):
    """``ExportJobV3`` (§3.1)."""

    id: uuid.UUID
    company_id: uuid.UUID
    status: JobStatus
    created_at: datetime
    expires_in: int
    is_interactive: bool
    number_of_items: int
    vendor_based_bookkeeping: bool
    created_by: uuid.UUID | None = None
    started_at: datetime | None = None
    last_updated_at: datetime | None = None
    completed_at: datetime | None = None
    expired_at: datetime | None = None
    failure_reason: str | None = None
    failure_reason_type: str | None = None
    # The status string Pleo sent (``status`` is our reading of it: UNKNOWN, or FAILED for
    # ``expired``); the status' value when built by hand.
    raw_status: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    FAILURE_TYPES = JobFailureReasonType

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES

    @classmethod
    def from_api(cls, data: Any, where: str = "data") -> ExportJob:
        """Parse one job. An unknown ``status`` reads as ``UNKNOWN`` and ``expired`` as ``failed``
        with ``job_expired`` (:mod:`exports.pleo.enums`); ``raw_status`` keeps what Pleo sent.
        ``failure_reason_type`` stays a plain string (:attr:`failure_type` reads it): Pleo's own
        pages use a value outside the enum (§4.3 conflict), and it must not make a job unreadable.
        """
        r = _Reader(data, where)
        raw_status = r.string("status")
        return cls(
            id=r.identifier("id"),
            company_id=r.identifier("companyId"),
            status=read_job_status(raw_status),
            created_at=r.timestamp("createdAt"),
            expires_in=r.integer("expiresIn"),
            is_interactive=r.boolean("isInteractive"),
            number_of_items=r.integer("numberOfItems"),
            vendor_based_bookkeeping=r.boolean("vendorBasedBookkeeping"),
            created_by=r.identifier("createdBy", required=False),
            started_at=r.timestamp("startedAt", required=False),
            last_updated_at=r.timestamp("lastUpdatedAt", required=False),
            completed_at=r.timestamp("completedAt", required=False),
            expired_at=r.timestamp("expiredAt", required=False),
            failure_reason=r.string("failureReason", required=False),
            failure_reason_type=implied_failure_type(
                raw_status, r.string("failureReasonType", required=False)
            ),
            raw_status=raw_status,
            raw=data,
        )


@dataclass(frozen=True)
class ExportJobItem(_StatusAndFailure):
    """``ExportJobItemV3`` (§3.6): the control-layer record of one accounting entry."""

    accounting_entry_id: uuid.UUID
    export_job_id: uuid.UUID
    status: ItemStatus
    exported_at: datetime | None = None
    external_id: str | None = None
    external_url: str | None = None
    failure_reason: str | None = None
    failure_reason_type: str | None = None
    raw_status: str = ""  # the status string Pleo sent (``status`` may read it as UNKNOWN)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    FAILURE_TYPES = ItemFailureReasonType

    @classmethod
    def from_api(cls, data: Any, where: str = "data") -> ExportJobItem:
        """Parse one item; an unknown ``status`` reads as ``UNKNOWN``, raw in ``raw_status``."""
        r = _Reader(data, where)
        raw_status = r.string("status")
        return cls(
            accounting_entry_id=r.identifier("accountingEntryId"),
            export_job_id=r.identifier("exportJobId"),
            status=read_enum(ItemStatus, raw_status),
            exported_at=r.timestamp("exportedAt", required=False),
            external_id=r.string("externalId", required=False),
            external_url=r.string("externalUrl", required=False),
            failure_reason=r.string("failureReason", required=False),
            failure_reason_type=r.string("failureReasonType", required=False),
            raw_status=raw_status,
            raw=data,
        )


@dataclass(frozen=True)
class ExportItem:
    """``ExportItemV3`` (§3.8): the data layer. Everything beyond the keys is in ``raw``."""

    accounting_entry_id: uuid.UUID
    company_id: uuid.UUID
    date: datetime
    type: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_api(cls, data: Any, where: str = "data") -> ExportItem:
        r = _Reader(data, where)
        return cls(
            accounting_entry_id=r.identifier("accountingEntryId"),
            company_id=r.identifier("companyId"),
            date=r.timestamp("date"),
            type=r.string("type"),
            raw=data,
        )


@dataclass(frozen=True)
class ItemUpdate:
    """One item outcome to report (``UpdateExportJobItemV3``, §3.7). Values are checked here, so a
    bad status or failure type fails before any HTTP; ``exported_at`` must be timezone-aware."""

    accounting_entry_id: uuid.UUID
    status: ItemStatus
    exported_at: datetime | None = None
    external_id: str | None = None
    external_url: str | None = None
    failure_reason: str | None = None
    failure_reason_type: ItemFailureReasonType | None = None

    def __post_init__(self) -> None:
        entry_id = uuid_arg(self.accounting_entry_id, "accounting_entry_id")
        object.__setattr__(self, "accounting_entry_id", entry_id)
        object.__setattr__(self, "status", refuse_unknown(ItemStatus(self.status), "item status"))
        if self.failure_reason_type is not None:
            reason_type = refuse_unknown(
                ItemFailureReasonType(self.failure_reason_type), "failure type"
            )
            object.__setattr__(self, "failure_reason_type", reason_type)
        if self.exported_at is not None and self.exported_at.utcoffset() is None:
            raise ValueError("exported_at must be timezone-aware")

    @classmethod
    def successful(
        cls,
        accounting_entry_id: uuid.UUID | str,
        *,
        exported_at: datetime | None = None,
        external_id: str | None = None,
        external_url: str | None = None,
    ) -> ItemUpdate:
        return cls(
            accounting_entry_id,  # type: ignore[arg-type]
            ItemStatus.SUCCESSFUL,
            exported_at=exported_at,
            external_id=external_id,
            external_url=external_url,
        )

    @classmethod
    def failed(
        cls,
        accounting_entry_id: uuid.UUID | str,
        failure_reason: str,
        failure_reason_type: ItemFailureReasonType | str,
    ) -> ItemUpdate:
        return cls(
            accounting_entry_id,  # type: ignore[arg-type]
            ItemStatus.FAILED,
            failure_reason=failure_reason,
            failure_reason_type=failure_reason_type,  # type: ignore[arg-type]
        )

    def to_api(self) -> dict[str, str]:
        """camelCase body, None omitted, ``exportedAt`` as ``YYYY-MM-DDTHH:MM:SSZ`` (§3)."""
        body = {
            "accountingEntryId": str(self.accounting_entry_id),
            "status": self.status.value,
            "exportedAt": _format_timestamp(self.exported_at) if self.exported_at else None,
            "externalId": self.external_id,
            "externalUrl": self.external_url,
            "failureReason": self.failure_reason,
            "failureReasonType": self.failure_reason_type.value
            if self.failure_reason_type
            else None,
        }
        return {key: value for key, value in body.items() if value is not None}


class ItemUpdateError(NamedTuple):
    """One entry of ``errors`` in a PUT items answer, e.g. ``ACCOUNTING_ENTRY_DOES_NOT_EXIST``."""

    accounting_entry_id: uuid.UUID
    type: str
    message: str


@dataclass(frozen=True)
class ItemUpdateResult:
    """``ExportJobItemUpdateV3``: updated items and per-item errors (a partial success)."""

    items: list[ExportJobItem] = field(default_factory=list)
    errors: list[ItemUpdateError] = field(default_factory=list)

    def merged(self, other: ItemUpdateResult) -> ItemUpdateResult:
        return ItemUpdateResult(
            items=[*self.items, *other.items], errors=[*self.errors, *other.errors]
        )

    @classmethod
    def from_api(cls, body: Any) -> ItemUpdateResult:
        r = _Reader(body, "body")
        items = [ExportJobItem.from_api(raw, f"data[{i}]") for i, raw in enumerate(r.array("data"))]
        errors = []
        for i, raw in enumerate(r.array("errors")):
            e = _Reader(raw, f"errors[{i}]")
            errors.append(
                ItemUpdateError(
                    accounting_entry_id=e.identifier("accountingEntryId"),
                    type=e.string("type"),
                    message=e.string("message", required=False) or "",
                )
            )
        return cls(items=items, errors=errors)


@dataclass(frozen=True)
class Subscription:
    """``SubscriptionModel`` (§5.4)."""

    id: uuid.UUID
    endpoint_url: str
    event_types: tuple[str, ...]
    status: SubscriptionStatus
    created_at: datetime
    updated_at: datetime
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def custom_headers(self) -> dict[str, Any]:
        """``customHeaders`` as Pleo holds them (empty when none)."""
        headers = self.raw.get("customHeaders")
        return dict(headers) if isinstance(headers, dict) else {}

    @property
    def endpoint_auth(self) -> dict[str, Any]:
        """``endpointAuth`` when it asks for any authentication (empty for none or type NONE)."""
        auth = self.raw.get("endpointAuth")
        if not isinstance(auth, dict):
            return {}
        credentials = auth.get("credentials")
        has_credentials = isinstance(credentials, dict) and any(credentials.values())
        kind = auth.get("type")
        if (kind is None or str(kind).upper() == "NONE") and not has_credentials:
            return {}
        return dict(auth)

    @property
    def carries_delivery_settings(self) -> bool:
        """True when Pleo holds ``customHeaders`` or ``endpointAuth`` for it: a PUT with our
        body (which has neither) would silently clear them, so it is replaced, never updated."""
        return bool(self.custom_headers or self.endpoint_auth)

    @classmethod
    def from_api(cls, data: Any, where: str = "data") -> Subscription:
        """Parse one subscription. ``eventTypes`` may be an array or a single string."""
        r = _Reader(data, where)
        event_types = r.obj.get("eventTypes")
        if isinstance(event_types, str):
            event_types = [event_types]
        else:
            event_types = r.array("eventTypes")
        if not all(isinstance(value, str) for value in event_types):
            raise _malformed(f"{where}.eventTypes: expected an array of strings")
        return cls(
            id=r.identifier("id"),
            endpoint_url=r.string("endpointUrl"),
            event_types=tuple(event_types),
            status=r.choice("status", SubscriptionStatus),
            created_at=r.timestamp("createdAt"),
            updated_at=r.timestamp("updatedAt"),
            raw=data,
        )


# --- Helpers --------------------------------------------------------------------------------------


def read_page(body: Any) -> tuple[list[Any], bool, str | None]:
    """``{"data": [...], "pagination": CursorPageInfo}`` → (data, hasNextPage, endCursor)."""
    r = _Reader(body, "body")
    data = r.array("data")
    pagination = _Reader(r.obj.get("pagination"), "pagination")
    return data, pagination.boolean("hasNextPage"), pagination.string("endCursor", required=False)


def data_of(parse: Callable[[Any, str], Any]) -> Callable[[Any], Any]:
    """Parse ``{"data": {...}}`` with ``parse``."""
    return lambda body: parse(_Reader(body, "body").obj.get("data"), "data")


def read_secret_key(body: Any) -> str:
    """``{"data": {"secretKey": ...}}`` (§5.3) → the secret. Never quoted in an error."""
    return _Reader(_Reader(body, "body").obj.get("data"), "data").string("secretKey")


def subscription_body(
    endpoint_url: str,
    event_types: Iterable[str],
    status: SubscriptionStatus | str,
    custom_headers: Mapping[str, str] | None,
    endpoint_auth: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """``SubscriptionRequest`` (§5.4): event types unique, in the order given."""
    unique = list(dict.fromkeys(str(event_type) for event_type in event_types))
    if not endpoint_url or not unique:
        raise ValueError("a subscription needs an endpoint_url and at least one event type")
    body: dict[str, Any] = {
        "endpointUrl": endpoint_url,
        "eventTypes": unique,
        "status": SubscriptionStatus(status).value,
    }
    if custom_headers:
        body["customHeaders"] = dict(custom_headers)
    if endpoint_auth:
        body["endpointAuth"] = dict(endpoint_auth)
    return body


def uuid_arg(value: Any, name: str) -> uuid.UUID:
    """Check an id given by the caller (it ends up in a URL path, so it must be a UUID)."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValueError(f"{name} must be a UUID, got {value!r}") from None


def _parse_timestamp(value: str, where: str) -> datetime:
    """ISO-8601 to an aware datetime. Pleo sends UTC with ``Z`` (§3); a value without an offset
    is read as UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _malformed(f"{where}: not an ISO-8601 timestamp: {value[:40]!r}") from None
    return parsed if parsed.utcoffset() is not None else parsed.replace(tzinfo=UTC)


def _format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}.get(
        type(value), "object" if isinstance(value, dict) else type(value).__name__
    )


def _malformed(problem: str) -> PleoResponseError:
    return PleoResponseError(f"malformed response: {problem}")


__all__ = [
    "ExportItem",
    "ExportJob",
    "ExportJobItem",
    "ItemUpdate",
    "ItemUpdateError",
    "ItemUpdateResult",
    "Subscription",
]
