"""How every call reaches Pleo: the retry and idempotency rules, the request budget hook and the
host check, all held by :meth:`PleoTransport._request`. The endpoints are in
:mod:`exports.pleo.client` (``PleoClient`` is a ``PleoTransport``), the errors raised in
:mod:`exports.pleo.errors`, and what the calls are made with (:class:`ClientConfig`, the auth
objects, the shared keep-alive sessions) in :mod:`exports.pleo.connection`.

This module imports no Django model and reads ``django.conf.settings`` only through
:func:`exports.pleo.hosts.policy_from_settings`, for the allow-list of Pleo hosts (and
:meth:`ClientConfig.from_settings` for the numbers). Callers pass in everything else.

Credentials go to Pleo only: before every attempt the URL is checked against ``PLEO_ALLOWED_HOSTS``
(:mod:`exports.pleo.hosts`); a URL outside it raises :class:`PleoHostNotAllowed` before the auth
object reads a credential or a connection is opened. Redirects are never followed.

Retry and idempotency rules (every number comes from :class:`ClientConfig`):

* GET is retried, up to ``max_attempts`` attempts in all, with jittered exponential backoff on
  connection errors, timeouts, dropped connections and HTTP 429/500/502/503/504.
* POST, PUT and DELETE change state. They are retried the same way only when the request provably
  had no effect: HTTP 429, or a connection error raised before anything was sent (refused, DNS
  failure, connect timeout; see :func:`provably_not_sent`). After a read timeout, a dropped
  connection or a 5xx the outcome is unknown: :class:`PleoOutcomeUnknown`, never retried.
* Any other 4xx is final. ``Retry-After`` (seconds or HTTP date) is a minimum wait, with jitter
  added on top only; above ``retry_after_cap`` the call fails at once (§6.2).
* A 401 with :class:`BearerAuth` asks the token owner to refresh once and re-sends once. A final
  401/403 calls ``on_auth_failure`` and disables the client instance.
* ``before_request`` (the request budget) is asked before every attempt; its
  :class:`BudgetExhausted` goes to the caller unretried (nothing was sent).

urllib3's own retries are switched off (see :func:`adapter_without_retries`), so every re-send
is a decision made here: :data:`RETRYABLE_GET_STATUSES` and :func:`provably_not_sent` below, then
``_request``, ``_transport_error``, ``_status_error`` and ``_retry_wait``. A client is not
thread-safe: use one per run.
"""

from __future__ import annotations

import email.utils
import http.client
import json as jsonlib
import logging
import math
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Self

import requests
from requests.auth import AuthBase
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from exports.pleo import hosts
from exports.pleo.connection import ClientConfig, NoRetryAdapter, adapter_without_retries
from exports.pleo.errors import (
    BudgetExhausted,
    PleoAuthError,
    PleoError,
    PleoHostNotAllowed,
    PleoHTTPError,
    PleoOutcomeUnknown,
    PleoResponseError,
    PleoUnavailable,
    blame,
    error_from_response,
)

logger = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"

# --- The retry rules (module docstring) ---------------------------------------------------------

# A read is retried on these statuses (a write on 429 only: the others may have had an effect).
RETRYABLE_GET_STATUSES = frozenset({429, 500, 502, 503, 504})
# Failures without an HTTP answer that are worth another attempt (a read always; a write only when
# provably not sent). Anything else (an invalid URL or header, say) is final.
TRANSPORT_FAILURES = (
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


def provably_not_sent(exc: BaseException) -> bool:
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


class PleoTransport:
    """One ``requests.Session`` to Pleo under the rules of the module docstring; the base of
    :class:`~exports.pleo.client.PleoClient`, which adds the endpoints.

    ``request_id`` (the run id) goes out as ``X-Request-Id`` on every call; it is a plain
    attribute and may be changed. Without one, a random id is used for this client.
    ``sleep``, ``rng`` (returns [0, 1)) and ``clock`` (aware ``now``) are injectable for tests.
    ``before_request(method, path)`` is called before every attempt (retries and the re-send after
    a token refresh included); it may raise :class:`BudgetExhausted`, which goes to the caller
    unretried. The request budget (``exports.services.budget``) is such a hook.
    """

    service = "Pleo"  # in log lines; another service's subclass names itself

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
        if not isinstance(self._session.adapters.get(prefix), NoRetryAdapter):
            # Mounted once per session: a new adapter would drop its pooled connections.
            self._session.mount(prefix, adapter_without_retries())
        self._sleep = sleep
        self._rng = rng
        self._clock = clock or (lambda: datetime.now(UTC))
        self._auth_failure: PleoAuthError | None = None
        self._before_request = before_request
        self.budget_exhausted: BudgetExhausted | None = None

    # --- The retry rules: one call, its attempts, and what each failure means ---

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
                    "%s %s %s attempt %d/%d failed (%s); retrying in %.2fs [request_id=%s]",
                    self.service,
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

    def _transport_error(
        self, exc: requests.RequestException, method: str, path: str, idempotent: bool
    ) -> tuple[PleoError, bool]:
        """Map a failure without an HTTP answer to (error, retryable)."""
        reason = describe_transport_failure(exc)
        if not isinstance(exc, TRANSPORT_FAILURES):
            error: PleoError = PleoError(f"request failed: {reason}", method=method, path=path)
            retryable = False
        elif idempotent or provably_not_sent(exc):
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
        error = self.error_from_response(response, method, path)
        if status == 429 or (idempotent and status in RETRYABLE_GET_STATUSES):
            assert isinstance(error, PleoHTTPError)
            retry_after = retry_after_seconds(response.headers.get("Retry-After"), self._clock())
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

    # --- Before each attempt: an earlier auth failure, the host, the budget ---

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

    def _refuse_host_not_allowed(self, method: str, path: str) -> None:
        """Credentials go to Pleo only: checked before every attempt, before the auth object
        reads a credential and before a connection is opened (whatever built the config)."""
        problem = self.host_policy().problem(self.config.base_url + path)
        if problem:
            logger.error(
                "%s %s %s not sent: %s [request_id=%s]",
                self.service,
                method,
                path,
                problem,
                self.request_id,
            )
            raise PleoHostNotAllowed(f"not sent: {problem}", method=method, path=path)

    def host_policy(self) -> hosts.HostPolicy:
        """The allow-list this client's credentials may go to (another service's client, such
        as :class:`exports.xero.transport.XeroTransport`, returns its own)."""
        return hosts.policy_from_settings()

    def extra_headers(self, path: str) -> dict[str, str]:
        """Headers a subclass adds to every request (none for Pleo)."""
        return {}

    def error_from_response(self, response: requests.Response, method: str, path: str):
        """The typed error of a non-2xx answer (a subclass maps another service's errors)."""
        return error_from_response(response, method, path)

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
                "%s %s %s not sent: %s [request_id=%s]",
                self.service,
                method,
                path,
                exc,
                self.request_id,
            )
            raise

    # --- One attempt ---

    def _send(
        self, method: str, path: str, params: Mapping[str, Any] | None, body: bytes | None
    ) -> requests.Response:
        headers = {
            "User-Agent": self.config.user_agent,
            "Accept": "application/json",
            "X-Request-Id": str(self.request_id),
            **self.extra_headers(path),
        }
        if body is not None:
            headers.setdefault("Content-Type", JSON_CONTENT_TYPE)  # extra_headers may name one
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

    # --- Reading a 2xx answer ---

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """One ``GET`` under the same retry, budget and auth rules; the decoded body, unparsed
        (``manage.py verify_pleo_contract`` checks Pleo's raw answers with it)."""
        return self._get_json(path, params)

    def _get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        response = self._request("GET", path, params=params, idempotent=True)
        return self._json(response, "GET", path)

    def _send_json(self, method: str, path: str, body: Any, parse: Callable[[Any], Any]) -> Any:
        """One non-idempotent ``POST``/``PUT`` of ``body`` as JSON; its answer parsed with
        ``parse``."""
        response = self._request(method, path, json=body, idempotent=False)
        return self._parse(method, path, self._json(response, method, path), parse)

    def _parse(self, method: str, path: str, body: Any, parse: Callable[[Any], Any]) -> Any:
        """Run ``parse``; a :class:`PleoResponseError` gets the call's method and path."""
        with blame(method, path):
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

    # --- Life cycle ---

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.config.base_url!r}, auth={self._auth!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session (only when this client created it)."""
        if self._owns_session:
            self._session.close()


def describe_transport_failure(exc: BaseException) -> str:
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
        return describe_transport_failure(error.__cause__)
    return " ".join(str(part) for part in ("HTTP", error.status, error.error_type) if part)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
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


__all__ = ["PleoTransport"]
