"""The one module that speaks HTTP to Pleo's OAuth 2.0 server (reference §2.3).

Authorization code with PKCE (S256 only) and rotating refresh tokens. This module builds the
authorize URL, exchanges a code and refreshes a token; it imports no Django model and stores
nothing (``exports.services.oauth`` does). Bodies are form-encoded; the client authenticates with
``client_id``/``client_secret`` in the body, as Pleo's pages show.

Nothing is ever retried here. A code is single-use and a refresh token rotates: presenting either
twice can revoke every token of the authorisation. So a failure is mapped to what the caller may
conclude:

* :class:`OAuthInvalidGrant`: Pleo said ``invalid_grant`` (code or refresh token expired, used or
  revoked). Only a new consent helps.
* :class:`OAuthOutcomeUnknown`: the request may have reached Pleo and been applied (read timeout,
  dropped connection, 5xx, an unreadable 2xx). A refresh token presented in such a request must be
  presumed rotated.
* :class:`OAuthUnavailable`: the request provably never reached Pleo (refused, DNS, connect
  timeout) or Pleo refused to process it (429): presenting the same token again is safe.
* :class:`OAuthError`: any other OAuth error (``invalid_client``, ``invalid_request``, ...); the
  base class of all of them.

Every request goes to Pleo only: the base URL is checked against ``PLEO_ALLOWED_HOSTS``
(:mod:`exports.pleo.hosts`) when the config is built and again before the token request is sent
(:class:`OAuthHostNotAllowed`); redirects are never followed.

Tokens, codes, verifiers and client secrets never appear in a log line, an exception message or
a ``repr``; exceptions are raised ``from None`` so no traceback frame holding a request body is
chained to them.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import requests

from exports.pleo import hosts
from exports.pleo.connection import adapter_without_retries
from exports.pleo.errors import one_line
from exports.pleo.transport import (
    TRANSPORT_FAILURES,
    describe_transport_failure,
    provably_not_sent,
)
from pleo_integration import __version__

logger = logging.getLogger(__name__)

AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
VERIFIER_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


# --- Errors ---------------------------------------------------------------------------------------


class OAuthError(Exception):
    """An OAuth call failed. ``error`` is the OAuth error code (``invalid_client``…) or None,
    ``description`` one line (never a secret), ``status`` the HTTP status or None."""

    def __init__(
        self, description: str, *, error: str | None = None, status: int | None = None
    ) -> None:
        self.description = one_line(description) or "unknown error"
        self.error = error
        self.status = status
        super().__init__(str(self))

    def __str__(self) -> str:
        head = " ".join(str(p) for p in (self.status, self.error) if p is not None)
        return f"{head}: {self.description}" if head else self.description

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class OAuthHostNotAllowed(OAuthError):
    """Not sent: the OAuth base URL is not a Pleo host of the allow-list
    (:mod:`exports.pleo.hosts`). No connection was opened; nothing was spent."""


class OAuthInvalidGrant(OAuthError):
    """``invalid_grant``: the code or refresh token is expired, used or revoked."""


class OAuthOutcomeUnknown(OAuthError):
    """The request may have been applied (read timeout, dropped connection, 5xx, unreadable
    answer). Never re-send a refresh token after this."""


class OAuthUnavailable(OAuthError):
    """Nothing was applied: the request never reached Pleo, or Pleo answered 429."""


# --- Values ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OAuthConfig:
    """Where Pleo's OAuth server is and who we are. Times are seconds."""

    base_url: str
    client_id: str
    client_secret: str = field(repr=False)
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    # Another OAuth server with the same rules (Xero's, exports.xero.oauth): its token path, its
    # allow-list (None: Pleo's, from the settings), its name in messages, and whether the client
    # authenticates in the form body (Pleo) or with HTTP Basic (``client_secret_basic``, Xero).
    token_path: str = TOKEN_PATH
    policy: hosts.HostPolicy | None = None
    service: str = "Pleo"
    basic_client_auth: bool = False

    def __post_init__(self) -> None:
        base_url = (self.base_url or "").strip().rstrip("/")
        if not base_url.startswith(("https://", "http://")):
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        object.__setattr__(self, "base_url", base_url)
        self.host_policy().check(base_url)  # HostNotAllowed, a ValueError
        if not self.client_id:
            raise ValueError("client_id must not be empty")

    def host_policy(self) -> hosts.HostPolicy:
        return self.policy or hosts.policy_from_settings()

    @property
    def token_url(self) -> str:
        return self.base_url + self.token_path

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)


@dataclass(frozen=True)
class TokenSet:
    """A token response. ``expires_in`` is seconds from when it was received."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int | None
    token_type: str = "Bearer"
    scope: str | None = None

    def expires_at(self, received_at: datetime) -> datetime | None:
        if self.expires_in is None:
            return None
        return received_at + timedelta(seconds=self.expires_in)


@dataclass(frozen=True)
class PkcePair:
    verifier: str = field(repr=False)
    challenge: str


def new_code_verifier(length: int = 64) -> str:
    """A PKCE code verifier: ``length`` (43–128) characters of ``[A-Za-z0-9-_]``."""
    if not 43 <= length <= 128:
        raise ValueError("a code verifier has 43 to 128 characters")
    verifier = secrets.token_urlsafe(length)[:length]
    assert len(verifier) == length and set(verifier) <= VERIFIER_ALPHABET
    return verifier


def code_challenge(verifier: str) -> str:
    """The S256 challenge: base64url(SHA-256(verifier)) without padding."""
    if not 43 <= len(verifier) <= 128 or not set(verifier) <= VERIFIER_ALPHABET:
        raise ValueError("not a valid PKCE code verifier")
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_pkce() -> PkcePair:
    verifier = new_code_verifier()
    return PkcePair(verifier=verifier, challenge=code_challenge(verifier))


def new_state() -> str:
    return secrets.token_urlsafe(32)


def authorize_url(
    *,
    base_url: str,
    client_id: str,
    redirect_uri: str,
    scopes: Iterable[str] | str,
    state: str,
    challenge: str,
    path: str = AUTHORIZE_PATH,
    policy: hosts.HostPolicy | None = None,
) -> str:
    """The URL to send the browser to for consent (reference §2.3); ``path`` and ``policy`` for
    another OAuth server (Xero's)."""
    hosts.check_pleo_url(base_url, policy)  # HostNotAllowed (a ValueError): nowhere else
    scope = scopes if isinstance(scopes, str) else " ".join(scopes)
    query = urlencode(
        {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": " ".join(scope.split()),
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{base_url.rstrip('/')}{path}?{query}"


# --- Token endpoint -------------------------------------------------------------------------------


def exchange_code(
    config: OAuthConfig,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    session: requests.Session | None = None,
) -> TokenSet:
    """``grant_type=authorization_code`` with the PKCE verifier."""
    return _token_request(
        config,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        },
        session=session,
    )


def refresh_tokens(
    config: OAuthConfig, *, refresh_token: str, session: requests.Session | None = None
) -> TokenSet:
    """``grant_type=refresh_token``. The presented token is spent once Pleo applied this, even if
    the answer is lost (:class:`OAuthOutcomeUnknown`)."""
    return _token_request(
        config, {"grant_type": "refresh_token", "refresh_token": refresh_token}, session=session
    )


def _token_request(
    config: OAuthConfig, form: dict[str, str], *, session: requests.Session | None
) -> TokenSet:
    grant_type = form["grant_type"]
    service, token_path = config.service, config.token_path
    problem = config.host_policy().problem(config.token_url)
    if problem:
        # Checked again here, whatever built the config: the client secret and the code or
        # refresh token go to the service's own hosts only. Nothing was sent, nothing spent.
        logger.error(
            "%s OAuth POST %s grant_type=%s not sent: %s", service, token_path, grant_type, problem
        )
        raise OAuthHostNotAllowed(f"not sent: {problem}")
    auth = None
    if config.basic_client_auth:
        data = {**form}
        auth = (config.client_id, config.client_secret)
    else:
        data = {**form, "client_id": config.client_id, "client_secret": config.client_secret}
    own_session = session is None
    if own_session:
        session = requests.Session()
        session.mount("https://", adapter_without_retries())
        session.mount("http://", adapter_without_retries())
    started = time.monotonic()
    outcome: Any = "error"
    try:
        try:
            response = session.post(
                config.token_url,
                data=data,
                auth=auth,
                headers={
                    "Accept": "application/json",
                    "User-Agent": f"pleo-export-bridge/{__version__}",
                },
                timeout=config.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            outcome = type(exc).__name__
            reason = describe_transport_failure(exc)
            if isinstance(exc, requests.ConnectTimeout) or provably_not_sent(exc):
                raise OAuthUnavailable(
                    f"{service}'s OAuth server is unreachable: {reason}"
                ) from None
            if isinstance(exc, TRANSPORT_FAILURES):
                raise OAuthOutcomeUnknown(
                    f"{reason} after the token request was sent; it may have been applied"
                ) from None
            raise OAuthError(f"token request failed: {reason}") from None
        outcome = response.status_code
        return _token_response(response)
    finally:
        logger.info(
            "%s OAuth POST %s grant_type=%s -> %s in %.0f ms",
            service,
            token_path,
            grant_type,
            outcome,
            (time.monotonic() - started) * 1000,
        )
        if own_session:
            session.close()


def _token_response(response: requests.Response) -> TokenSet:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if 200 <= status < 300:
        if not isinstance(body, dict):
            raise OAuthOutcomeUnknown("the token answer is not a JSON object", status=status)
        access, refresh = body.get("access_token"), body.get("refresh_token")
        expires_in = body.get("expires_in")
        if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
            raise OAuthOutcomeUnknown(
                "the token answer lacks access_token or refresh_token", status=status
            )
        if isinstance(expires_in, str) and expires_in.strip().isdigit():
            expires_in = int(expires_in)
        if expires_in is not None and (
            not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in < 0
        ):
            raise OAuthOutcomeUnknown("the token answer has an invalid expires_in", status=status)
        token_type = body.get("token_type") or "Bearer"
        if str(token_type).lower() != "bearer":
            raise OAuthOutcomeUnknown(f"unexpected token_type {token_type!r}", status=status)
        scope = body.get("scope") if isinstance(body.get("scope"), str) else None
        return TokenSet(
            access_token=access,
            refresh_token=refresh,
            expires_in=expires_in,
            token_type="Bearer",
            scope=scope,
        )
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, str) else None
    description = body.get("error_description") if isinstance(body, dict) else None
    if not isinstance(description, str) or not description.strip():
        description = response.reason or f"HTTP {status}"
    if status >= 500:
        raise OAuthOutcomeUnknown(
            f"{description}; the token request may have been applied", error=error, status=status
        )
    if status == 429:
        raise OAuthUnavailable(f"rate limited: {description}", error=error, status=status)
    if error == "invalid_grant":
        raise OAuthInvalidGrant(description, error=error, status=status)
    if status < 400:
        raise OAuthOutcomeUnknown(f"unexpected HTTP {status}", error=error, status=status)
    raise OAuthError(description, error=error, status=status)


__all__ = [
    "AUTHORIZE_PATH",
    "OAuthConfig",
    "OAuthError",
    "OAuthHostNotAllowed",
    "OAuthInvalidGrant",
    "OAuthOutcomeUnknown",
    "OAuthUnavailable",
    "PkcePair",
    "TOKEN_PATH",
    "TokenSet",
    "authorize_url",
    "code_challenge",
    "exchange_code",
    "new_code_verifier",
    "new_pkce",
    "new_state",
    "refresh_tokens",
]
