"""The OAuth 2.0 consent (authorization code with PKCE) that Pleo credentials and Xero connections
share: the start (a fresh PKCE verifier and ``state``, the consent page's URL) and the code
exchange, with the admin's messages when either fails.

A :class:`Consent` says what differs between the two OAuth servers: the service's name and the
admin's button in messages, the exception the connect services raise, and the callback URL
registered with the server. What each connection does before and after (its checks, where the
tokens go, Xero's tenant) stays in :mod:`exports.services.oauth` and
:mod:`exports.services.xero_connections`; the views' half is :mod:`exports.consent_views`.

Nothing here logs or puts in a message a token, code, verifier or client secret.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.views.decorators.debug import sensitive_variables

from exports import clock
from exports.pleo import oauth as pleo_oauth
from exports.pleo.hosts import HostNotAllowed


@dataclass(frozen=True)
class ConsentStart:
    """Where to send the browser, and what to remember in the session until it comes back:
    ``state``, the PKCE ``verifier`` and ``remember`` (what the callback needs besides)."""

    url: str
    state: str
    verifier: str = field(repr=False)
    remember: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Consent:
    """One OAuth server's consent, as the admin meets it. ``failed(message)`` is the connect
    service's exception (``str()`` is the admin's message); ``redirect_uri()`` the callback."""

    service: str
    button: str
    failed: type[Exception]
    redirect_uri: Callable[[], str]

    def begin(
        self, authorize_url: Callable[..., str], *, where: str, remember: dict[str, Any], **params
    ) -> ConsentStart:
        """A fresh verifier and ``state`` and the consent page's URL, built by ``authorize_url``
        with ``params``. A host the allow-list refuses fails, naming ``where`` it came from."""
        pkce = pleo_oauth.new_pkce()
        state = pleo_oauth.new_state()
        try:
            url = authorize_url(
                redirect_uri=self.redirect_uri(), state=state, challenge=pkce.challenge, **params
            )
        except HostNotAllowed as exc:
            raise self.failed(f"{where} is refused: {exc}.") from None
        return ConsentStart(url=url, state=state, verifier=pkce.verifier, remember=remember)

    @sensitive_variables("code", "code_verifier", "config")
    def exchange(
        self, config: pleo_oauth.OAuthConfig, *, code: str, code_verifier: str
    ) -> tuple[pleo_oauth.TokenSet, datetime]:
        """The tokens for ``code`` (presented once), and when they were received (their expiry
        counts from then)."""
        received_at = clock.now()
        try:
            tokens = pleo_oauth.exchange_code(
                config, code=code, redirect_uri=self.redirect_uri(), code_verifier=code_verifier
            )
        except pleo_oauth.OAuthInvalidGrant as exc:
            raise self.failed(
                f"{self.service} refused the authorization code ({exc.description}). {self.again()}"
            ) from None
        except pleo_oauth.OAuthError as exc:
            raise self.failed(
                f"Exchanging the authorization code with {self.service} failed: {exc}. "
                f"{self.again()}"
            ) from None
        return tokens, received_at

    def again(self) -> str:
        return f"Nothing was changed; use '{self.button}' again."


__all__ = ["Consent", "ConsentStart"]
