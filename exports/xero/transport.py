"""How every call reaches Xero: the Pleo client's one place (:class:`~exports.pleo.transport.
PleoTransport`: timeouts, bounded retries with jittered backoff honouring ``Retry-After``, the
request-budget hook, no redirects, urllib3's retries off), with what differs for Xero:

* the allow-list is Xero's (``XERO_ALLOWED_HOSTS``, :mod:`exports.xero.hosts`), checked before
  every attempt, before a token is read;
* ``xero-tenant-id`` goes with every Accounting API call (not with ``/connections``);
* a 429 says which limit was hit in ``X-Rate-Limit-Problem`` (docs/xero-openapi/README.md):
  ``minute``, ``appminute`` and ``concurrent`` are retried after ``Retry-After`` (within the cap),
  ``day`` never (the organisation's 5,000 calls are spent until tomorrow);
* the remaining limits Xero reports (``X-MinLimit-Remaining``, ``X-DayLimit-Remaining``,
  ``X-AppMinLimit-Remaining``) are kept in :attr:`XeroTransport.rate_limits` (not a 429's: its
  ``Retry-After`` is the wait, a remaining 0 would make the next call wait a whole minute more);
* ``after_response(method, path, status)`` is called after every attempt (``status`` None when
  no answer came): the caller's audit record of the HTTP call;
* every error is a :class:`~exports.xero.errors.XeroError` (mapped in ``_request``);
* writes (:meth:`XeroTransport.write`) carry an ``Idempotency-Key`` (at most 128 characters,
  the same on every attempt, so Xero answers a retried write with its first answer), and an
  attachment is sent as its raw bytes with its own ``Content-Type``.

Why not the official SDK ``xero-python``: its ``ApiClient`` sends through its own
``RESTClientObject`` (a urllib3 ``PoolManager``) with no retry on 429/5xx, no ``Retry-After``,
no per-call hook for our request budget, audit or host allow-list, and one timeout setting per
call site. Routing it through this class would mean replacing its private REST layer; for the
five reads (and later a handful of writes) we need, plain JSON through this one place is less
code than that adapter. See the README's section on Xero.

No Django model is imported here; settings are read only through :mod:`exports.xero.hosts`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import requests

from exports.pleo.errors import PleoError
from exports.pleo.hosts import HostPolicy
from exports.pleo.transport import PleoTransport
from exports.xero import errors, hosts

ACCOUNTING_PATH = "/api.xro/2.0"
RATE_LIMIT_HEADERS = ("X-MinLimit-Remaining", "X-DayLimit-Remaining", "X-AppMinLimit-Remaining")
NOT_RETRIED_LIMITS = frozenset({"day"})
MAX_IDEMPOTENCY_KEY = 128


class XeroTransport(PleoTransport):
    """The Xero side of the shared transport; see the module docstring. ``tenant_id`` may be
    set after ``/connections`` named it."""

    service = "Xero"

    def __init__(
        self,
        *,
        tenant_id: Any = None,
        after_response: Callable[[str, str, int | None], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tenant_id = tenant_id
        self.rate_limits: dict[str, int] = {}
        self._after_response = after_response
        self._call_headers: dict[str, str] = {}
        self._raw_body: bytes | None = None

    def host_policy(self) -> HostPolicy:
        return hosts.policy_from_settings()

    def extra_headers(self, path: str) -> dict[str, str]:
        headers = dict(self._call_headers)
        if self.tenant_id and path.startswith(ACCOUNTING_PATH):
            headers["xero-tenant-id"] = str(self.tenant_id)
        return headers

    def write(
        self,
        method: str,
        path: str,
        *,
        idempotency_key: str,
        json: Any = None,
        raw: bytes | None = None,
        content_type: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """A ``PUT``/``POST`` with ``Idempotency-Key``; ``raw`` bytes (with ``content_type``)
        instead of ``json`` for an attachment. Returns the decoded JSON answer."""
        if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
            raise ValueError(f"an Idempotency-Key of 1 to {MAX_IDEMPOTENCY_KEY} characters")
        self._call_headers = {"Idempotency-Key": idempotency_key}
        if raw is not None:
            self._call_headers["Content-Type"] = content_type or "application/octet-stream"
            self._raw_body = raw
        try:
            response = self._request(method, path, params=params, json=json, idempotent=False)
        finally:
            self._call_headers, self._raw_body = {}, None
        try:
            return self._json(response, method, path)
        except PleoError as exc:
            raise errors.as_xero(exc) from None

    def error_from_response(self, response: requests.Response, method: str, path: str):
        return errors.error_from_response(response, method, path)

    def _status_error(self, response, method, path, idempotent):
        error, retryable = super()._status_error(response, method, path, idempotent)
        problem = getattr(error, "rate_limit_problem", None)
        if response.status_code == 429 and problem in NOT_RETRIED_LIMITS:
            error.message += f" (Xero's {problem} limit is spent: not retried)"
            return error, False
        return error, retryable

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return super()._request(method, path, **kwargs)
        except PleoError as exc:
            converted = errors.as_xero(exc)
            if converted is exc:
                raise
            raise converted from None

    def _send(
        self, method: str, path: str, params: Mapping[str, Any] | None, body: bytes | None
    ) -> requests.Response:
        status = None
        if self._raw_body is not None:
            body = self._raw_body
        try:
            response = super()._send(method, path, params, body)
            status = response.status_code
            if status == 429:  # its Retry-After says when, and the retry waits that long
                return response
            for header in RATE_LIMIT_HEADERS:
                value = response.headers.get(header, "")
                if value.strip().isdigit():
                    self.rate_limits[header] = int(value)
            return response
        finally:
            if self._after_response is not None:
                self._after_response(method, path, status)


__all__ = ["ACCOUNTING_PATH", "XeroTransport"]
