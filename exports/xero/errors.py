"""Every error the Xero client raises: the Pleo client's hierarchy (the transport is shared,
:mod:`exports.xero.transport`), each class also a :class:`XeroError`, so a caller may catch either
the kind (``PleoAuthError``…) or everything from Xero (``XeroError``).

A Xero error answer is read from its JSON: ``Detail``/``Message``/``Title`` (Xero's problem
bodies, docs/xero-openapi/xero_accounting.yaml ``Error``), ``Type`` as the error type. A 429 keeps
``X-Rate-Limit-Problem`` (``minute``, ``day``, ``appminute``, ``concurrent``) in
:attr:`XeroError.rate_limit_problem`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exports.pleo import errors as pleo_errors
from exports.pleo.errors import one_line

if TYPE_CHECKING:
    import requests


class XeroError(pleo_errors.PleoError):
    """Base of every error of the Xero client."""

    rate_limit_problem: str | None = None


class XeroHTTPError(XeroError, pleo_errors.PleoHTTPError):
    """Xero answered with an error status."""


class XeroBadRequest(XeroHTTPError, pleo_errors.PleoBadRequest):
    """400 and other 4xx (Xero's ``ValidationException`` and friends)."""


class XeroAuthError(XeroHTTPError, pleo_errors.PleoAuthError):
    """401/403: the token was refused, or the tenant is not a connection of the token."""


class XeroNotFound(XeroHTTPError, pleo_errors.PleoNotFound):
    """404."""


class XeroRateLimited(XeroHTTPError, pleo_errors.PleoRateLimited):
    """429 after the last attempt, for a day limit, or with ``Retry-After`` above the cap."""


class XeroServerError(XeroHTTPError, pleo_errors.PleoServerError):
    """5xx on a read."""


class XeroUnavailable(XeroError, pleo_errors.PleoUnavailable):
    """Xero could not be reached."""


class XeroOutcomeUnknown(XeroError, pleo_errors.PleoOutcomeUnknown):
    """A write may or may not have taken effect."""


class XeroResponseError(XeroError, pleo_errors.PleoResponseError):
    """A 2xx answer we could not read."""


class XeroHostNotAllowed(XeroError, pleo_errors.PleoHostNotAllowed):
    """Not sent: the URL is not a Xero host of ``XERO_ALLOWED_HOSTS``."""


# The Pleo client's class -> ours (most specific first).
_EQUIVALENT: tuple[tuple[type[pleo_errors.PleoError], type[XeroError]], ...] = (
    (pleo_errors.PleoAuthError, XeroAuthError),
    (pleo_errors.PleoNotFound, XeroNotFound),
    (pleo_errors.PleoRateLimited, XeroRateLimited),
    (pleo_errors.PleoServerError, XeroServerError),
    (pleo_errors.PleoHTTPError, XeroBadRequest),
    (pleo_errors.PleoUnavailable, XeroUnavailable),
    (pleo_errors.PleoOutcomeUnknown, XeroOutcomeUnknown),
    (pleo_errors.PleoResponseError, XeroResponseError),
    (pleo_errors.PleoHostNotAllowed, XeroHostNotAllowed),
)


def as_xero(error: pleo_errors.PleoError) -> pleo_errors.PleoError:
    """``error`` as the Xero class of its kind (itself when it already is one, and for
    :class:`~exports.pleo.errors.BudgetExhausted`, our own budget's refusal, raised as it is)."""
    if isinstance(error, XeroError | pleo_errors.BudgetExhausted):
        return error
    cls = next((xero for pleo, xero in _EQUIVALENT if isinstance(error, pleo)), XeroError)
    converted = cls(
        error.message.replace("Pleo", "Xero"),
        status=error.status,
        error_type=error.error_type,
        method=error.method,
        path=error.path,
    )
    converted.retry_after = getattr(error, "retry_after", None)
    converted.__cause__ = error.__cause__
    return converted


def error_from_response(response: requests.Response, method: str, path: str) -> XeroError:
    """The typed error of a non-2xx Xero answer."""
    error = as_xero(pleo_errors.error_from_response(response, method, path))
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("Detail", "Message", "Title"):
            if isinstance(body.get(key), str) and body[key].strip():
                error.message = one_line(body[key])[:300]
                break
        kind = body.get("Type")
        if isinstance(kind, str) and kind:
            error.error_type = kind
    problem = response.headers.get("X-Rate-Limit-Problem")
    error.rate_limit_problem = problem.strip().lower() if problem else None
    return error


__all__ = [
    "XeroAuthError",
    "XeroBadRequest",
    "XeroError",
    "XeroHTTPError",
    "XeroHostNotAllowed",
    "XeroNotFound",
    "XeroOutcomeUnknown",
    "XeroRateLimited",
    "XeroResponseError",
    "XeroServerError",
    "XeroUnavailable",
    "as_xero",
    "error_from_response",
]
