"""Where Pleo is and with what: :class:`ClientConfig`, the two ways a credential rides on a request
(:class:`ApiKeyAuth`, :class:`BearerAuth`) and the keep-alive sessions clients share
(:func:`shared_session`), with urllib3's own retries off (:func:`adapter_without_retries`): every
re-send is decided by :mod:`exports.pleo.transport`. A credential never appears in a ``repr``.
"""

from __future__ import annotations

import base64
import http.cookiejar
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.util.retry import Retry

from exports.pleo.errors import PleoAuthError
from pleo_integration import __version__

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
            page_size=settings.PLEO_PAGE_SIZE or None,
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


# --- Sessions ------------------------------------------------------------------------------------


class NoRetryAdapter(HTTPAdapter):
    """The adapter this module mounts (recognised so that it is mounted once per session)."""


def adapter_without_retries() -> HTTPAdapter:
    """An adapter whose urllib3 ``Retry`` never re-sends: every retry is decided in ``_request``."""
    return NoRetryAdapter(
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
        session.mount(f"{base_url}/", adapter_without_retries())
        _shared_sessions.by_url[base_url] = session
    return session


__all__ = [
    "ApiKeyAuth",
    "BearerAuth",
    "ClientConfig",
    "adapter_without_retries",
    "shared_session",
]
