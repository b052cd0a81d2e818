"""The one module that speaks HTTP to Pleo: Export API v3 and Webhook Subscriptions API v1.

Section numbers (§) refer to our working reference, ``pleo-export-api.md``. This module imports no
Django model and nothing from ``exports`` but its enums (:mod:`exports.pleo.enums`, re-exported
here, with how values Pleo sends are read: unknown ones never make a response unreadable) and
:mod:`exports.pleo.hosts`: callers pass in what it needs. It reads ``django.conf.settings`` only in
:meth:`ClientConfig.from_settings` and, through :func:`exports.pleo.hosts.policy_from_settings`,
for the allow-list of Pleo hosts.

Credentials go to Pleo only: before every attempt the URL is checked against ``PLEO_ALLOWED_HOSTS``
(:mod:`exports.pleo.hosts`); a URL outside it raises :class:`PleoHostNotAllowed` before the auth
object reads a credential or a connection is opened. Redirects are never followed.

Retry rules (every number comes from :class:`ClientConfig`), all held by ``PleoClient._request``:

* GET is retried, up to ``max_attempts`` attempts in all, with jittered exponential backoff on
  connection errors, timeouts, dropped connections and HTTP 429/500/502/503/504.
* POST, PUT and DELETE change state. They are retried the same way only when the request provably
  had no effect: HTTP 429, or a connection error raised before anything was sent (refused, DNS
  failure, connect timeout; see :func:`_provably_not_sent`). After a read timeout, a dropped
  connection or a 5xx the outcome is unknown: :class:`PleoOutcomeUnknown`, never retried.
* Any other 4xx is final. ``Retry-After`` (seconds or HTTP date) is a minimum wait, with jitter
  added on top only; above ``retry_after_cap`` the call fails at once (§6.2).
* A 401 with :class:`BearerAuth` asks the token owner to refresh once and re-sends once. A final
  401/403 calls ``on_auth_failure`` and disables the client instance.

urllib3's own retries are switched off (see :func:`_adapter_without_retries`), so every re-send
is a decision made here. A client is not thread-safe: use one per run.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import enum
import http
import http.client
import http.cookiejar
import json as jsonlib
import logging
import math
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util.retry import Retry

from exports.pleo import hosts
from exports.pleo.enums import (
    TERMINAL_JOB_STATUSES,
    UNFINISHED_JOB_STATUSES,
    ErrorType,
    ItemFailureReasonType,
    ItemStatus,
    JobEvent,
    JobFailureReasonType,
    JobStatus,
    SubscriptionStatus,
    WebhookEventType,
    error_type_is,
    implied_failure_type,
    read_enum,
    read_failure_type,
    read_job_status,
    refuse_unknown,
)
from pleo_integration import __version__

logger = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
MAX_PAGES = 10_000
RETRYABLE_GET_STATUSES = frozenset({429, 500, 502, 503, 504})

# --- Enums (§4) live in exports.pleo.enums, with the rules for reading what Pleo sends ----------

# --- Exceptions -----------------------------------------------------------------------------------


class PleoError(Exception):
    """Base of every error this client raises.

    ``status`` (HTTP status or None), ``error_type`` (Pleo's ``type``), ``message`` (one line),
    ``method`` and ``path`` (without query). ``batch``/``partial_result`` are set only by
    :meth:`PleoClient.update_export_job_items_in_batches`.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.message = _one_line(message) or "unknown error"
        self.status = status
        self.error_type = error_type
        self.method = method
        self.path = path
        self.batch: tuple[ItemUpdate, ...] | None = None
        self.partial_result: ItemUpdateResult | None = None
        super().__init__(self.message)

    def __str__(self) -> str:
        head = " ".join(str(part) for part in (self.status, self.error_type) if part is not None)
        text = f"{head}: {self.message}" if head else self.message
        if self.method and self.path:
            text += f" ({self.method} {self.path})"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def has_type(self, expected: ErrorType | str) -> bool:
        """Whether Pleo's error ``type`` is ``expected``, in any case (:func:`error_type_is`)."""
        return error_type_is(self.error_type, expected)


class PleoHTTPError(PleoError):
    """Pleo answered with an error status. ``retry_after`` is the parsed ``Retry-After``."""

    retry_after: float | None = None


class PleoBadRequest(PleoHTTPError):
    """400, and any other 4xx without a class of its own."""


class PleoAuthError(PleoHTTPError):
    """401 or 403 (final), or a call refused because an earlier one ended in 401/403."""


class PleoNotFound(PleoHTTPError):
    """404 (e.g. ``EXPORT_NOT_FOUND``)."""


class PleoConflict(PleoHTTPError):
    """409 (e.g. ``EXPORT_ALREADY_IN_PROGRESS``)."""


class PleoPayloadTooLarge(PleoHTTPError):
    """413 (``EXPORT_JOB_ITEMS_UPDATE_LIMIT``)."""


class PleoUnprocessable(PleoHTTPError):
    """422 (``INVALID_EXPORT_JOB_STATUS_CHANGE``, ``EXPORT_JOB_STATUS_UNPROCESSABLE``)."""


class PleoRateLimited(PleoHTTPError):
    """429 after the last attempt, or with a ``Retry-After`` above the cap."""


class PleoServerError(PleoHTTPError):
    """5xx on a read: after the retries for 500/502/503/504, at once for any other 5xx or when
    ``Retry-After`` is above the cap. (On a write a 5xx is :class:`PleoOutcomeUnknown`.)"""


class BudgetExhausted(PleoError):
    """Not sent: the ``before_request`` hook refused the call (our own request budget is spent).

    ``retry_at`` (aware UTC) is when the budget has room again. Nothing reached Pleo, so the call
    is not retried here: the caller decides (a worker run defers the company; a foreground run may
    wait). The client remembers the last one in :attr:`PleoClient.budget_exhausted`.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_at: datetime,
        key: str = "",
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.retry_at = retry_at
        self.key = key


class PleoHostNotAllowed(PleoError):
    """Not sent: the URL is not a Pleo host of the allow-list (:mod:`exports.pleo.hosts`). No
    connection was opened and no credential was read. Final: a configuration to fix."""


class PleoOutcomeUnknown(PleoError):
    """A state-changing call may or may not have taken effect (read timeout, dropped connection
    or 5xx after the request was sent). Re-read the resource to find out; never blindly re-send."""


class PleoUnavailable(PleoError):
    """Pleo could not be reached (connection errors/timeouts after all attempts). For a
    state-changing call this is raised only when no attempt provably reached Pleo."""


class PleoResponseError(PleoError):
    """Pleo's response could not be understood (not JSON, missing fields, wrong types, broken
    pagination). For a state-changing call the change may have happened. An unknown job or item
    status or failure type is no such error: it reads as the enum's ``UNKNOWN``."""


_STATUS_ERRORS: dict[int, type[PleoHTTPError]] = {
    400: PleoBadRequest,
    401: PleoAuthError,
    403: PleoAuthError,
    404: PleoNotFound,
    409: PleoConflict,
    413: PleoPayloadTooLarge,
    422: PleoUnprocessable,
    429: PleoRateLimited,
}


# --- Configuration and authentication -------------------------------------------------------------


@dataclass(frozen=True)
class ClientConfig:
    """Where Pleo is and how patient to be. Times are seconds."""

    base_url: str
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    retry_after_cap: float = 30.0
    items_batch_size: int = 100
    user_agent: str = f"pleo-export-bridge/{__version__}"
    # ``limit`` sent on list calls that give none (None: Pleo's default page size). Fewer, larger
    # pages spend less of the request budget: 1,000 items are 10 calls at 100, 50 at 20.
    page_size: int | None = None

    def __post_init__(self) -> None:
        base_url = (self.base_url or "").strip().rstrip("/")
        if not base_url.startswith(("https://", "http://")):
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        object.__setattr__(self, "base_url", base_url)
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base < 0 or self.backoff_max < 0 or self.retry_after_cap < 0:
            raise ValueError("backoff and Retry-After limits must not be negative")
        if self.items_batch_size < 1:
            raise ValueError("items_batch_size must be at least 1")
        if self.page_size is not None and self.page_size < 1:
            raise ValueError("page_size must be at least 1 (or None)")

    @classmethod
    def from_settings(cls, base_url_override: str | None = None) -> ClientConfig:
        """Build from the ``PLEO_*`` settings; ``base_url_override`` replaces the API base URL."""
        from django.conf import settings

        return cls(
            base_url=base_url_override or settings.PLEO_API_BASE_URL,
            connect_timeout=settings.PLEO_CONNECT_TIMEOUT,
            read_timeout=settings.PLEO_READ_TIMEOUT,
            max_attempts=settings.PLEO_MAX_ATTEMPTS,
            backoff_base=settings.PLEO_BACKOFF_BASE,
            backoff_max=settings.PLEO_BACKOFF_MAX,
            retry_after_cap=settings.PLEO_RETRY_AFTER_CAP,
            items_batch_size=settings.PLEO_ITEMS_BATCH_SIZE,
            page_size=getattr(settings, "PLEO_PAGE_SIZE", None) or None,
        )


class ApiKeyAuth(AuthBase):
    """HTTP Basic with the API key as user name and an empty password (§2.2)."""

    def __init__(self, api_key: str) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        encoded = base64.b64encode(f"{api_key}:".encode()).decode("ascii")
        self._header = f"Basic {encoded}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    def refresh_after_unauthorized(self) -> bool:
        """An API key cannot be refreshed: a 401 is final."""
        return False

    def __repr__(self) -> str:
        return "ApiKeyAuth(api_key=<redacted>)"


class BearerAuth(AuthBase):
    """``Authorization: Bearer <token>`` (§2.2). ``get_token`` is called for every request, so a
    token refreshed elsewhere is picked up. ``refresh`` is called once after a 401; when it
    returns True the call is re-sent once."""

    def __init__(
        self, get_token: Callable[[], str], refresh: Callable[[], bool] | None = None
    ) -> None:
        self._get_token = get_token
        self._refresh = refresh

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._get_token()
        if not token:
            raise PleoAuthError("no bearer token is available")
        request.headers["Authorization"] = f"Bearer {token}"
        return request

    def refresh_after_unauthorized(self) -> bool:
        return bool(self._refresh()) if self._refresh is not None else False

    def __repr__(self) -> str:
        refresh = "<callable>" if self._refresh is not None else "None"
        return f"BearerAuth(get_token=<callable>, refresh={refresh})"


# --- Typed results --------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class ExportJob:
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

    def __post_init__(self) -> None:
        if not self.raw_status:
            object.__setattr__(self, "raw_status", str(self.status))

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES

    @property
    def failure_type(self) -> JobFailureReasonType | None:
        """``failure_reason_type`` read against the enum (``UNKNOWN`` when we do not know it)."""
        return read_failure_type(JobFailureReasonType, self.failure_reason_type)

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
class ExportJobItem:
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

    def __post_init__(self) -> None:
        if not self.raw_status:
            object.__setattr__(self, "raw_status", str(self.status))

    @property
    def failure_type(self) -> ItemFailureReasonType | None:
        """``failure_reason_type`` read against the enum (``UNKNOWN`` when we do not know it)."""
        return read_failure_type(ItemFailureReasonType, self.failure_reason_type)

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
        entry_id = _uuid_arg(self.accounting_entry_id, "accounting_entry_id")
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


# --- The client -----------------------------------------------------------------------------------


class PleoClient:
    """Pleo's Export API v3 and Subscriptions API v1 over one ``requests.Session``.

    ``request_id`` (the run id) goes out as ``X-Request-Id`` on every call; it is a plain
    attribute and may be changed. Without one, a random id is used for this client.
    ``sleep``, ``rng`` (returns [0, 1)) and ``clock`` (aware ``now``) are injectable for tests.
    ``before_request(method, path)`` is called before every attempt (retries and the re-send after
    a token refresh included); it may raise :class:`BudgetExhausted`, which goes to the caller
    unretried. The request budget (``exports.services.budget``) is such a hook.
    """

    def __init__(
        self,
        *,
        config: ClientConfig,
        auth: AuthBase,
        request_id: str | None = None,
        on_auth_failure: Callable[[PleoAuthError], None] | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], datetime] | None = None,
        before_request: Callable[[str, str], None] | None = None,
    ) -> None:
        self.config = config
        self.request_id = request_id or uuid.uuid4().hex
        self._auth = auth
        self._on_auth_failure = on_auth_failure
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        prefix = f"{config.base_url}/"
        if not isinstance(self._session.adapters.get(prefix), _NoRetryAdapter):
            # Mounted once per session: a new adapter would drop its pooled connections.
            self._session.mount(prefix, _adapter_without_retries())
        self._sleep = sleep
        self._rng = rng
        self._clock = clock or (lambda: datetime.now(UTC))
        self._auth_failure: PleoAuthError | None = None
        self._before_request = before_request
        self.budget_exhausted: BudgetExhausted | None = None

    def __repr__(self) -> str:
        return f"PleoClient(base_url={self.config.base_url!r}, auth={self._auth!r})"

    def __enter__(self) -> PleoClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session (only when this client created it)."""
        if self._owns_session:
            self._session.close()

    # --- Export jobs (§3.2-3.5) ---

    def list_export_jobs(
        self,
        *,
        company_id: uuid.UUID | str | None = None,
        statuses: Iterable[JobStatus | str] | None = UNFINISHED_JOB_STATUSES,
        limit: int | None = None,
    ) -> list[ExportJob]:
        """All pages of ``GET /v3/export-jobs``, sorted by ``createdAt`` then ``id`` (the order is
        undocumented, §3.2). ``statuses`` is sent repeated; None or empty means no filter."""
        params: dict[str, Any] = {}
        if company_id is not None:
            params["company_id"] = str(_uuid_arg(company_id, "company_id"))
        if statuses:
            params["statuses"] = [
                refuse_unknown(JobStatus(status), "job status").value for status in statuses
            ]
        jobs = self._collect("/v3/export-jobs", params, limit, ExportJob.from_api)
        return sorted(jobs, key=lambda job: (job.created_at, str(job.id)))

    def probe_export_jobs(self, *, company_id: uuid.UUID | str | None = None) -> int:
        """One ``GET /v3/export-jobs?limit=1`` (never a second page): whether Pleo accepts this
        client's credential. Returns how many jobs the page held (0 or 1)."""
        params: dict[str, Any] = {"limit": 1}
        if company_id is not None:
            params["company_id"] = str(_uuid_arg(company_id, "company_id"))
        body = self._get_json("/v3/export-jobs", params)
        items, _, _ = self._parse("GET", "/v3/export-jobs", body, _read_page)
        return len(items)

    def get_export_job(self, job_id: uuid.UUID | str) -> ExportJob:
        path = f"/v3/export-jobs/{_uuid_arg(job_id, 'job_id')}"
        return self._parse("GET", path, self._get_json(path), _data_of(ExportJob.from_api))

    def post_export_job_event(
        self,
        job_id: uuid.UUID | str,
        event: JobEvent | str,
        *,
        failure_reason: str | None = None,
        failure_reason_type: JobFailureReasonType | str | None = None,
    ) -> None:
        """``POST /v3/export-job-events`` (§3.5; 202). Failure fields go only with ``failed``."""
        event = JobEvent(event)
        has_failure = failure_reason is not None or failure_reason_type is not None
        if has_failure and event is not JobEvent.FAILED:
            raise ValueError("failure_reason and failure_reason_type go only with 'failed'")
        body = {"jobId": str(_uuid_arg(job_id, "job_id")), "event": event.value}
        if failure_reason is not None:
            body["failureReason"] = failure_reason
        if failure_reason_type is not None:
            reason_type = JobFailureReasonType(failure_reason_type)
            body["failureReasonType"] = refuse_unknown(reason_type, "failure type").value
        self._request("POST", "/v3/export-job-events", json=body, idempotent=False)

    def create_export_job(
        self,
        company_id: uuid.UUID | str,
        accounting_entry_ids: Iterable[uuid.UUID | str],
        *,
        employee_id: uuid.UUID | str | None = None,
        is_interactive: bool | None = None,
        vendor_based_bookkeeping: bool | None = None,
    ) -> ExportJob:
        """``POST /v3/export-jobs`` (§3.3). Pleo's web app creates jobs; this is for the sandbox
        and tests. 409 ``EXPORT_ALREADY_IN_PROGRESS`` raises :class:`PleoConflict`."""
        body: dict[str, Any] = {
            "companyId": str(_uuid_arg(company_id, "company_id")),
            "accountingEntryIds": [
                str(_uuid_arg(entry, "accounting_entry_ids")) for entry in accounting_entry_ids
            ],
        }
        if employee_id is not None:
            body["employeeId"] = str(_uuid_arg(employee_id, "employee_id"))
        if is_interactive is not None:
            body["isInteractive"] = is_interactive
        if vendor_based_bookkeeping is not None:
            body["options"] = {"vendorBasedBookkeeping": vendor_based_bookkeeping}
        path = "/v3/export-jobs"
        response = self._request("POST", path, json=body, idempotent=False)
        return self._parse(
            "POST", path, self._json(response, "POST", path), _data_of(ExportJob.from_api)
        )

    # --- Export job items and export items (§3.6-3.8) ---

    def list_export_job_items(
        self,
        job_id: uuid.UUID | str,
        *,
        status: ItemStatus | str | None = None,
        limit: int | None = None,
    ) -> list[ExportJobItem]:
        """All pages of ``GET /v3/export-jobs/{jobId}/items`` (the control layer)."""
        params = (
            {} if status is None else {"status": refuse_unknown(ItemStatus(status), "status").value}
        )
        path = f"/v3/export-jobs/{_uuid_arg(job_id, 'job_id')}/items"
        return self._collect(path, params, limit, ExportJobItem.from_api)

    def update_export_job_items(
        self, job_id: uuid.UUID | str, updates: Sequence[ItemUpdate]
    ) -> ItemUpdateResult:
        """One ``PUT /v3/export-jobs/{jobId}/items`` of at most ``items_batch_size`` updates
        (§3.7). Per-item problems come back in ``errors``; nothing is sent for an empty list."""
        updates = list(updates)
        if len(updates) > self.config.items_batch_size:
            raise ValueError(
                f"{len(updates)} item updates in one call; the limit is "
                f"{self.config.items_batch_size} (use update_export_job_items_in_batches)"
            )
        if not updates:
            return ItemUpdateResult()
        path = f"/v3/export-jobs/{_uuid_arg(job_id, 'job_id')}/items"
        body = [update.to_api() for update in updates]
        response = self._request("PUT", path, json=body, idempotent=False)
        return self._parse(
            "PUT", path, self._json(response, "PUT", path), ItemUpdateResult.from_api
        )

    def update_export_job_items_in_batches(
        self,
        job_id: uuid.UUID | str,
        updates: Iterable[ItemUpdate],
        *,
        batch_size: int | None = None,
    ) -> ItemUpdateResult:
        """Send ``updates`` in batches and merge the results.

        A 413 halves the batch size (rounding up, down to 1) and re-sends the same updates: the
        limit is 100 in the spec but 10 on one design page (§3.7), and a 413 rejects the whole
        request. Any other error propagates with ``exc.batch`` (the updates in flight: after
        :class:`PleoOutcomeUnknown` their outcome is unknown) and ``exc.partial_result`` (the
        batches already applied).
        """
        pending = list(updates)
        size = self.config.items_batch_size if batch_size is None else batch_size
        if not 1 <= size <= self.config.items_batch_size:
            raise ValueError(f"batch_size must be between 1 and {self.config.items_batch_size}")
        result = ItemUpdateResult()
        start = 0
        while start < len(pending):
            batch = pending[start : start + size]
            try:
                outcome = self.update_export_job_items(job_id, batch)
            except PleoError as exc:
                if isinstance(exc, PleoPayloadTooLarge) and len(batch) > 1:
                    size = (len(batch) + 1) // 2
                    logger.warning(
                        "Pleo refused %d item updates as too many (413); retrying with %d",
                        len(batch),
                        size,
                    )
                    continue
                exc.batch = tuple(batch)
                exc.partial_result = result
                raise
            result = result.merged(outcome)
            start += len(batch)
        return result

    def list_export_items(
        self, job_id: uuid.UUID | str, *, limit: int | None = None
    ) -> list[ExportItem]:
        """All pages of ``GET /v3/export-items?job_id=`` (the data layer, §3.8)."""
        params = {"job_id": str(_uuid_arg(job_id, "job_id"))}
        return self._collect("/v3/export-items", params, limit, ExportItem.from_api)

    # --- Webhook subscriptions (§5.4) ---

    def list_subscriptions(
        self,
        *,
        status: SubscriptionStatus | str | None = None,
        event_types: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[Subscription]:
        params: dict[str, Any] = {}
        if status is not None:
            params["status"] = SubscriptionStatus(status).value
        if event_types:
            params["event_types"] = list(event_types)
        return self._collect("/v1/subscriptions", params, limit, Subscription.from_api)

    def create_subscription(
        self,
        endpoint_url: str,
        event_types: Iterable[str],
        *,
        status: SubscriptionStatus | str = SubscriptionStatus.ACTIVE,
        custom_headers: Mapping[str, str] | None = None,
        endpoint_auth: Mapping[str, Any] | None = None,
    ) -> Subscription:
        """``POST /v1/subscriptions`` (answers 200, not 201)."""
        body = _subscription_body(endpoint_url, event_types, status, custom_headers, endpoint_auth)
        path = "/v1/subscriptions"
        response = self._request("POST", path, json=body, idempotent=False)
        return self._parse(
            "POST", path, self._json(response, "POST", path), _data_of(Subscription.from_api)
        )

    def update_subscription(
        self,
        subscription_id: uuid.UUID | str,
        *,
        endpoint_url: str,
        event_types: Iterable[str],
        status: SubscriptionStatus | str = SubscriptionStatus.ACTIVE,
        custom_headers: Mapping[str, str] | None = None,
        endpoint_auth: Mapping[str, Any] | None = None,
    ) -> Subscription:
        """``PUT /v1/subscriptions/{id}``: replaces the subscription (same body as create)."""
        body = _subscription_body(endpoint_url, event_types, status, custom_headers, endpoint_auth)
        path = f"/v1/subscriptions/{_uuid_arg(subscription_id, 'subscription_id')}"
        response = self._request("PUT", path, json=body, idempotent=False)
        return self._parse(
            "PUT", path, self._json(response, "PUT", path), _data_of(Subscription.from_api)
        )

    def get_subscription(self, subscription_id: uuid.UUID | str) -> Subscription:
        path = f"/v1/subscriptions/{_uuid_arg(subscription_id, 'subscription_id')}"
        return self._parse("GET", path, self._get_json(path), _data_of(Subscription.from_api))

    def delete_subscription(self, subscription_id: uuid.UUID | str) -> None:
        """``DELETE /v1/subscriptions/{id}`` (204)."""
        path = f"/v1/subscriptions/{_uuid_arg(subscription_id, 'subscription_id')}"
        self._request("DELETE", path, idempotent=False)

    def get_subscription_secret(self, subscription_id: uuid.UUID | str) -> str:
        """The ``whsec_`` signing secret (§5.3). Neither it nor the body is ever logged."""
        path = f"/v1/subscriptions/{_uuid_arg(subscription_id, 'subscription_id')}/secret"

        def secret_key(body: Any) -> str:
            return _Reader(_Reader(body, "body").obj.get("data"), "data").string("secretKey")

        return self._parse("GET", path, self._get_json(path), secret_key)

    # --- Pagination (§6.3) ---

    def paginate(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        limit: int | None = None,
        max_pages: int = MAX_PAGES,
    ) -> Iterator[Any]:
        """Yield every element of ``data`` over all pages of a cursor-paginated GET, following
        ``pagination.endCursor`` with ``after=`` while ``pagination.hasNextPage`` is true.

        A missing or repeated cursor while ``hasNextPage`` is true, or more than ``max_pages``
        pages, raises :class:`PleoResponseError` instead of looping forever.
        """
        for _, items in self._pages(path, params, limit, max_pages):
            yield from items

    def _pages(
        self,
        path: str,
        params: Mapping[str, Any] | None,
        limit: int | None,
        max_pages: int = MAX_PAGES,
    ) -> Iterator[tuple[int, list[Any]]]:
        query = dict(params or {})
        limit = limit if limit is not None else self.config.page_size
        if limit is not None:
            query["limit"] = limit
        seen: set[str] = set()
        for page in range(1, max_pages + 1):
            body = self._get_json(path, query)
            items, has_next, cursor = self._parse("GET", path, body, _read_page)
            yield page, items
            if not has_next:
                return
            if not cursor:
                raise _page_error(path, f"page {page} has hasNextPage true but no endCursor")
            if cursor in seen:
                raise _page_error(path, f"page {page} repeats an earlier endCursor")
            seen.add(cursor)
            query["after"] = cursor
        raise _page_error(path, f"more than {max_pages} pages; giving up")

    def _collect(
        self,
        path: str,
        params: Mapping[str, Any],
        limit: int | None,
        parse: Callable[[Any, str], Any],
    ) -> list[Any]:
        results = []
        for page, items in self._pages(path, params, limit):
            with _blame("GET", path):
                results += [parse(raw, f"data[{i}] (page {page})") for i, raw in enumerate(items)]
        return results

    # --- Request plumbing ---

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """One ``GET`` under the same retry, budget and auth rules; the decoded body, unparsed
        (``manage.py verify_pleo_contract`` checks Pleo's raw answers with it)."""
        return self._get_json(path, params)

    def _get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        response = self._request("GET", path, params=params, idempotent=True)
        return self._json(response, "GET", path)

    def _parse(self, method: str, path: str, body: Any, parse: Callable[[Any], Any]) -> Any:
        """Run ``parse``; a :class:`PleoResponseError` gets the call's method and path."""
        with _blame(method, path):
            return parse(body)

    @staticmethod
    def _json(response: requests.Response, method: str, path: str) -> Any:
        """Decode a 2xx body. The message never quotes the body (it may hold a secret)."""
        content_type = response.headers.get("Content-Type", "no Content-Type")
        problem = "empty body where JSON was expected"
        if response.content:
            try:
                return response.json()
            except ValueError as exc:
                kind = "an HTML page" if "html" in content_type.lower() else "invalid JSON"
                problem = (
                    f"{kind} instead of JSON ({content_type}, {len(response.content)} bytes; "
                    f"{getattr(exc, 'msg', 'not JSON')})"
                )
        raise PleoResponseError(
            f"malformed response: {problem}", status=response.status_code, method=method, path=path
        )

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool,
    ) -> requests.Response:
        """Send one API call under the retry rules of the module docstring; return the 2xx
        response or raise a :class:`PleoError`. ``idempotent`` is True only for reads."""
        self._refuse_after_auth_failure(method, path)
        self._refuse_host_not_allowed(method, path)
        body = None if json is None else jsonlib.dumps(json, ensure_ascii=False).encode("utf-8")
        attempt = 1
        refreshed = False
        while True:
            self._check_budget(method, path)
            try:
                response = self._send(method, path, params, body)
            except requests.RequestException as exc:
                error, retryable = self._transport_error(exc, method, path, idempotent)
                retry_after = None
            else:
                if 200 <= response.status_code < 300:
                    return response
                if response.status_code == 401 and not refreshed and self._refresh_auth():
                    logger.info("Pleo %s %s: 401, token refreshed; sending once more", method, path)
                    refreshed = True
                    continue
                error, retryable = self._status_error(response, method, path, idempotent)
                retry_after = getattr(error, "retry_after", None)
            if retryable and attempt < self.config.max_attempts:
                wait = self._retry_wait(attempt, retry_after)
                logger.warning(
                    "Pleo %s %s attempt %d/%d failed (%s); retrying in %.2fs [request_id=%s]",
                    method,
                    path,
                    attempt,
                    self.config.max_attempts,
                    _retry_reason(error),
                    wait,
                    self.request_id,
                )
                self._sleep(wait)
                attempt += 1
                continue
            if isinstance(error, PleoAuthError):
                self._disable(error)
            raise error

    def _refuse_host_not_allowed(self, method: str, path: str) -> None:
        """Credentials go to Pleo only: checked before every attempt, before the auth object
        reads a credential and before a connection is opened (whatever built the config)."""
        problem = hosts.policy_from_settings().problem(self.config.base_url + path)
        if problem:
            logger.error(
                "Pleo %s %s not sent: %s [request_id=%s]", method, path, problem, self.request_id
            )
            raise PleoHostNotAllowed(f"not sent: {problem}", method=method, path=path)

    def _check_budget(self, method: str, path: str) -> None:
        """Ask the ``before_request`` hook; a refusal is remembered and raised as it is."""
        if self._before_request is None:
            return
        try:
            self._before_request(method, path)
        except BudgetExhausted as exc:
            exc.method, exc.path = exc.method or method, exc.path or path
            self.budget_exhausted = exc
            logger.info(
                "Pleo %s %s not sent: %s [request_id=%s]", method, path, exc, self.request_id
            )
            raise

    def _send(
        self, method: str, path: str, params: Mapping[str, Any] | None, body: bytes | None
    ) -> requests.Response:
        headers = {
            "User-Agent": self.config.user_agent,
            "Accept": "application/json",
            "X-Request-Id": str(self.request_id),
        }
        if body is not None:
            headers["Content-Type"] = JSON_CONTENT_TYPE
        self._refuse_host_not_allowed(method, path)
        started = time.monotonic()
        outcome: object = "no answer"
        try:
            response = self._session.request(
                method,
                self.config.base_url + path,
                params=params,
                data=body,
                headers=headers,
                auth=self._auth,
                timeout=(self.config.connect_timeout, self.config.read_timeout),
                allow_redirects=False,
            )
            outcome = response.status_code
            return response
        except requests.RequestException as exc:
            outcome = type(exc).__name__
            raise
        except PleoError as exc:  # raised by the auth object, before anything was sent
            exc.method, exc.path = exc.method or method, exc.path or path
            raise
        finally:
            logger.debug(
                "Pleo %s %s -> %s in %.0f ms [request_id=%s]",
                method,
                path,
                outcome,
                (time.monotonic() - started) * 1000,
                self.request_id,
            )

    def _transport_error(
        self, exc: requests.RequestException, method: str, path: str, idempotent: bool
    ) -> tuple[PleoError, bool]:
        """Map a failure without an HTTP answer to (error, retryable)."""
        reason = _describe_transport_failure(exc)
        if not isinstance(exc, _TRANSPORT_FAILURES):
            error: PleoError = PleoError(f"request failed: {reason}", method=method, path=path)
            retryable = False
        elif idempotent or _provably_not_sent(exc):
            error = PleoUnavailable(f"Pleo is unreachable: {reason}", method=method, path=path)
            retryable = True
        else:
            error = PleoOutcomeUnknown(
                f"{reason} after the request was sent; it may or may not have taken effect",
                method=method,
                path=path,
            )
            retryable = False
        error.__cause__ = exc
        return error, retryable

    def _status_error(
        self, response: requests.Response, method: str, path: str, idempotent: bool
    ) -> tuple[PleoError, bool]:
        """Map an error status to (error, retryable)."""
        status = response.status_code
        error = _http_error(response, method, path)
        if status == 429 or (idempotent and status in RETRYABLE_GET_STATUSES):
            assert isinstance(error, PleoHTTPError)
            retry_after = _parse_retry_after(response.headers.get("Retry-After"), self._clock())
            error.retry_after = retry_after
            if retry_after is not None and retry_after > self.config.retry_after_cap:
                cap = self.config.retry_after_cap
                error.message += f" (Retry-After {retry_after:.0f}s is above the {cap:.0f}s cap)"
                return error, False
            return error, True
        if not idempotent and status >= 500:
            unknown = PleoOutcomeUnknown(
                f"{error.message}; the request may or may not have taken effect",
                status=status,
                error_type=error.error_type,
                method=method,
                path=path,
            )
            return unknown, False
        return error, False

    def _retry_wait(self, attempt: int, retry_after: float | None) -> float:
        """Equal-jitter exponential backoff: ``step = min(max, base * 2**(attempt-1))`` and a wait
        in ``[step/2, step)``. ``Retry-After`` raises the floor; jitter is only added on top."""
        step = min(self.config.backoff_max, self.config.backoff_base * 2 ** min(attempt - 1, 30))
        floor = step / 2 if retry_after is None else max(retry_after, step / 2)
        return floor + self._rng() * step / 2

    def _refresh_auth(self) -> bool:
        refresh = getattr(self._auth, "refresh_after_unauthorized", None)
        return bool(refresh()) if refresh is not None else False

    def _disable(self, error: PleoAuthError) -> None:
        """Remember the auth failure (later calls are refused) and tell the owner once."""
        self._auth_failure = error
        if self._on_auth_failure is not None:
            try:
                self._on_auth_failure(error)
            except Exception:
                logger.error("on_auth_failure callback failed", exc_info=True)

    def _refuse_after_auth_failure(self, method: str, path: str) -> None:
        failure = self._auth_failure
        if failure is not None:
            raise PleoAuthError(
                f"not sent: this client's credential was refused earlier ({failure})",
                status=failure.status,
                error_type=failure.error_type,
                method=method,
                path=path,
            )


# --- Helpers --------------------------------------------------------------------------------------

_TRANSPORT_FAILURES = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
# Evidence that bytes may have reached Pleo: a read-phase failure somewhere in the chain.
_SENT_EVIDENCE = (
    ProtocolError,
    ReadTimeoutError,
    http.client.HTTPException,
    requests.exceptions.ReadTimeout,
    requests.exceptions.ChunkedEncodingError,
)
# Failures while opening the connection: nothing was sent. NameResolutionError is a
# NewConnectionError, and NewConnectionError is a ConnectTimeoutError (urllib3 2).
_CONNECT_PHASE = (NewConnectionError, ConnectTimeoutError)


@contextlib.contextmanager
def _blame(method: str, path: str) -> Iterator[None]:
    """Give a :class:`PleoResponseError` raised inside the method and path of the call."""
    try:
        yield
    except PleoResponseError as exc:
        exc.method = exc.method or method
        exc.path = exc.path or path
        raise


class _NoRetryAdapter(HTTPAdapter):
    """The adapter this module mounts (recognised so that it is mounted once per session)."""


def _adapter_without_retries() -> HTTPAdapter:
    """An adapter whose urllib3 ``Retry`` never re-sends: every retry is decided in ``_request``."""
    return _NoRetryAdapter(
        max_retries=Retry(
            total=0,
            connect=0,
            read=False,
            redirect=False,
            status=0,
            raise_on_status=False,
            respect_retry_after_header=False,
        )
    )


_shared_sessions = threading.local()


def shared_session(base_url: str) -> requests.Session:
    """A keep-alive session for ``base_url``, one per thread of a process, for clients that come
    and go (one a run): consecutive runs in a worker reuse a pooled connection to Pleo instead
    of a new TCP and TLS handshake each. It keeps no cookies (a session shared by several
    credentials must carry nothing from one to the next; auth goes with each request). urllib3
    checks a pooled connection before reusing it, and a connection dropped in between is never
    re-sent on: the client's own retry rules decide, as for any connection failure.
    """
    base_url = base_url.rstrip("/")
    pid = os.getpid()
    if getattr(_shared_sessions, "pid", None) != pid:  # first use, or a forked child
        _shared_sessions.pid, _shared_sessions.by_url = pid, {}
    session = _shared_sessions.by_url.get(base_url)
    if session is None:
        session = requests.Session()
        session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        # The environment's proxy and CA-bundle settings, read once here instead of on every
        # request (requests scans the whole environment per call when trust_env is on).
        session.proxies.update(requests.utils.get_environ_proxies(f"{base_url}/"))
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if ca_bundle:
            session.verify = ca_bundle
        session.trust_env = False
        session.mount(f"{base_url}/", _adapter_without_retries())
        _shared_sessions.by_url[base_url] = session
    return session


def _cause_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps: ``args`` (requests), ``reason`` (urllib3's MaxRetryError),
    ``__cause__`` and ``__context__``."""
    queue: list[BaseException] = [exc]
    seen: set[int] = set()
    while queue and len(seen) < 32:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [*current.args, getattr(current, "reason", None)]
        linked += [current.__cause__, current.__context__]
        queue.extend(item for item in linked if isinstance(item, BaseException))


def _provably_not_sent(exc: BaseException) -> bool:
    """True only when the request cannot have reached Pleo: a ``ConnectTimeout``, or a
    ``ConnectionError`` caused by a connect-phase urllib3 error (refused, DNS, connect timeout)
    with no read-phase failure anywhere in its chain."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return False
    chain = list(_cause_chain(exc))
    if any(isinstance(item, _SENT_EVIDENCE) for item in chain[1:]):
        return False
    return any(isinstance(item, _CONNECT_PHASE) for item in chain)


def _describe_transport_failure(exc: BaseException) -> str:
    chain = list(_cause_chain(exc))
    root = type(chain[-1]).__name__ if len(chain) > 1 else type(exc).__name__

    def has(*classes: type[BaseException]) -> bool:
        return any(isinstance(item, classes) for item in chain)

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        what = "connect timeout"
    elif has(requests.exceptions.ReadTimeout, ReadTimeoutError):
        what = "read timeout"
    elif has(ProtocolError, http.client.HTTPException, requests.exceptions.ChunkedEncodingError):
        what = "connection dropped"
    elif has(NewConnectionError):
        what = "could not connect"
    elif has(ConnectTimeoutError):
        what = "connect timeout"
    elif isinstance(exc, requests.exceptions.SSLError):
        what = "TLS error"
    elif isinstance(exc, requests.exceptions.ConnectionError):
        what = "connection error"
    else:
        what = "request error"
    return f"{what} ({root})"


def _retry_reason(error: PleoError) -> str:
    if error.status is None and error.__cause__ is not None:
        return _describe_transport_failure(error.__cause__)
    return " ".join(str(part) for part in ("HTTP", error.status, error.error_type) if part)


def _http_error(response: requests.Response, method: str, path: str) -> PleoError:
    """The typed error for a non-2xx response, from a JSON ``ExceptionInfo`` body or, failing
    that, from the text (an HTML page's title) or the status phrase."""
    status = response.status_code
    error_type, message = _error_details(response)
    if status < 400:
        return PleoResponseError(
            f"malformed response: unexpected HTTP status {status} ({message})",
            status=status,
            method=method,
            path=path,
        )
    cls = _STATUS_ERRORS.get(status) or (PleoServerError if status >= 500 else PleoBadRequest)
    return cls(message, status=status, error_type=error_type, method=method, path=path)


def _error_details(response: requests.Response) -> tuple[str | None, str]:
    phrase = response.reason or _status_phrase(response.status_code)
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error_type = body.get("type") if isinstance(body.get("type"), str) else None
        for key in ("message", "error_description", "detail", "title", "error"):
            if isinstance(body.get(key), str) and body[key].strip():
                return error_type, body[key]
        return error_type, phrase
    text = response.text.strip()
    if not text or body is not None:
        return None, phrase
    if "<" in text[:100] and re.search(r"<(html|body|head|!doctype)", text[:500], re.IGNORECASE):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        return None, _one_line(title.group(1)) if title and title.group(1).strip() else phrase
    return None, text[:200]


def _status_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date); None when
    absent or unreadable. A date in the past means 0."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _read_page(body: Any) -> tuple[list[Any], bool, str | None]:
    """``{"data": [...], "pagination": CursorPageInfo}`` → (data, hasNextPage, endCursor)."""
    r = _Reader(body, "body")
    data = r.array("data")
    pagination = _Reader(r.obj.get("pagination"), "pagination")
    return data, pagination.boolean("hasNextPage"), pagination.string("endCursor", required=False)


def _page_error(path: str, problem: str) -> PleoResponseError:
    return PleoResponseError(
        f"malformed response: broken pagination: {problem}", method="GET", path=path
    )


def _malformed(problem: str) -> PleoResponseError:
    return PleoResponseError(f"malformed response: {problem}")


def _data_of(parse: Callable[[Any, str], Any]) -> Callable[[Any], Any]:
    """Parse ``{"data": {...}}`` with ``parse``."""
    return lambda body: parse(_Reader(body, "body").obj.get("data"), "data")


def _subscription_body(
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


def _uuid_arg(value: Any, name: str) -> uuid.UUID:
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


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


__all__ = [
    "ApiKeyAuth",
    "BearerAuth",
    "BudgetExhausted",
    "ClientConfig",
    "ErrorType",
    "ExportItem",
    "ExportJob",
    "ExportJobItem",
    "ItemFailureReasonType",
    "ItemStatus",
    "ItemUpdate",
    "ItemUpdateError",
    "ItemUpdateResult",
    "JobEvent",
    "JobFailureReasonType",
    "JobStatus",
    "MAX_PAGES",
    "PleoAuthError",
    "PleoBadRequest",
    "PleoClient",
    "PleoConflict",
    "PleoError",
    "PleoHTTPError",
    "PleoHostNotAllowed",
    "PleoNotFound",
    "PleoOutcomeUnknown",
    "PleoPayloadTooLarge",
    "PleoRateLimited",
    "PleoResponseError",
    "PleoServerError",
    "PleoUnavailable",
    "PleoUnprocessable",
    "Subscription",
    "SubscriptionStatus",
    "TERMINAL_JOB_STATUSES",
    "UNFINISHED_JOB_STATUSES",
    "WebhookEventType",
    "error_type_is",
    "shared_session",
]
