"""Xero's error answers.

* 400 ``ValidationException`` (the ``Error`` schema of ``xero_accounting.yaml``):
  ``{"ErrorNumber": 10, "Type": "ValidationException", "Message": …, "Elements": [...]}``, each
  element the document as sent plus its ``ValidationErrors``.
* 401/403/404/429 and other protocol errors: Xero answers these in an RFC 7807 style
  (``{"Type", "Title", "Status", "Detail", "Instance"}``); the exact ``Detail`` strings are a
  sandbox reading (README, "Assumptions").
"""

from __future__ import annotations

import uuid
from typing import Any

from pleo_sandbox.messages import Response

JSON = "application/json; charset=utf-8"


class XeroError(Exception):
    """An HTTP error answer with a ready body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def problem(status: int, title: str, detail: str, headers: dict | None = None) -> XeroError:
    body = {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
    }
    return XeroError(status, body, headers)


def unauthorized(detail: str = "AuthenticationUnsuccessful") -> XeroError:
    return problem(401, "Unauthorized", detail, {"WWW-Authenticate": 'Bearer realm="xero"'})


def forbidden(detail: str = "AuthorizationUnsuccessful") -> XeroError:
    return problem(403, "Forbidden", detail)


def not_found(detail: str = "The resource you're looking for cannot be found") -> XeroError:
    return problem(404, "Not Found", detail)


def validation(message: str, elements: list[dict] | None = None) -> XeroError:
    """Xero's 400 ``ValidationException`` (the spec's ``Error`` schema)."""
    body: dict[str, Any] = {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": message,
    }
    if elements is not None:
        body["Elements"] = elements
    return XeroError(400, body)


def bad_request(message: str) -> XeroError:
    """A 400 that is not about a document (query, header, body shape)."""
    return XeroError(400, {"ErrorNumber": 17, "Type": "BadRequestException", "Message": message})


def as_response(error: XeroError) -> Response:
    content_type = "text/html; charset=utf-8" if isinstance(error.body, bytes) else JSON
    return Response(error.status, error.body, dict(error.headers), content_type)
