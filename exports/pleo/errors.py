"""Every error the Pleo client raises, and how an HTTP error answer becomes one.

The hierarchy, under :class:`PleoError`:

* :class:`PleoHTTPError` — Pleo answered with an error status; one subclass per status that
  callers tell apart (400, 401/403, 404, 409, 413, 422, 429, 5xx on a read).
* :class:`PleoOutcomeUnknown` — kept apart from every other error: a state-changing call may or
  may not have taken effect (read timeout, dropped connection or 5xx after the request was sent).
  It is neither an HTTP error nor "unavailable"; the caller re-reads before doing anything else.
* :class:`PleoUnavailable` — Pleo could not be reached; for a write, provably nothing was sent.
* :class:`BudgetExhausted` and :class:`PleoHostNotAllowed` — not sent at all (our own request
  budget, or a URL outside the allow-list of Pleo hosts).
* :class:`PleoResponseError` — a 2xx answer we could not read.

When each is raised, and which are retried: :mod:`exports.pleo.transport`.
"""

from __future__ import annotations

import contextlib
import http
import re
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from exports.pleo.enums import ErrorType, error_type_is

if TYPE_CHECKING:
    import requests

    from exports.pleo.resources import ItemUpdate, ItemUpdateResult


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
        self.message = one_line(message) or "unknown error"
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


STATUS_ERRORS: dict[int, type[PleoHTTPError]] = {
    400: PleoBadRequest,
    401: PleoAuthError,
    403: PleoAuthError,
    404: PleoNotFound,
    409: PleoConflict,
    413: PleoPayloadTooLarge,
    422: PleoUnprocessable,
    429: PleoRateLimited,
}


def error_from_response(response: requests.Response, method: str, path: str) -> PleoError:
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
    cls = STATUS_ERRORS.get(status) or (PleoServerError if status >= 500 else PleoBadRequest)
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
        return None, one_line(title.group(1)) if title and title.group(1).strip() else phrase
    return None, text[:200]


def _status_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


@contextlib.contextmanager
def blame(method: str, path: str) -> Iterator[None]:
    """Give a :class:`PleoResponseError` raised inside the method and path of the call."""
    try:
        yield
    except PleoResponseError as exc:
        exc.method = exc.method or method
        exc.path = exc.path or path
        raise


def one_line(text: str) -> str:
    return " ".join(str(text).split())


__all__ = [
    "BudgetExhausted",
    "PleoAuthError",
    "PleoBadRequest",
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
]
