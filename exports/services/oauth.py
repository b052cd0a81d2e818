"""OAuth 2.0 credentials: connecting from the admin, and the one place tokens are refreshed.

Connect (``oauth_connect_begin`` → Pleo's consent page → ``oauth_connect_complete``): a fresh
PKCE verifier and ``state`` per attempt (the views keep both in the admin user's session), the
code exchanged once, both tokens stored encrypted with the access token's expiry, status OK.

Refresh (``oauth_access_token`` / ``oauth_refresh_after_unauthorized``), at most one in flight
per credential across processes and machines, without holding a database lock across the HTTP
call. The compare-and-set loop is :mod:`exports.services.token_refresh` (shared with Xero's
connections; its docstring states the rules): one refresh in flight, a refresh token never
presented twice, ``invalid_grant`` or an unknown outcome marking the credential
``needs_reauthorisation``, after which every use raises ``CredentialUnusable``
(:mod:`exports.services.credential_errors`) with the reason (no HTTP call).

Nothing here logs or puts in an exception a token, code, verifier or client secret.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from exports import clock, crypto
from exports.models import Credential
from exports.notifications import service as notifications
from exports.pleo import BearerAuth, PleoAuthError
from exports.pleo import oauth as pleo_oauth
from exports.pleo.hosts import HostNotAllowed
from exports.services import token_refresh
from exports.services.credential_errors import CredentialUnusable, credential_unusable_message

logger = logging.getLogger(__name__)

POLL_MAX_SECONDS = token_refresh.POLL_MAX_SECONDS


class ConnectFailed(Exception):
    """Connecting could not be started or completed; ``str()`` is the admin's message."""


# --- Settings and configuration -----------------------------------------------------------------


def oauth_scopes() -> str:
    return " ".join(str(settings.PLEO_OAUTH_SCOPES).split())


def oauth_refresh_margin() -> timedelta:
    return timedelta(seconds=float(settings.PLEO_OAUTH_REFRESH_MARGIN_SECONDS))


oauth_marker_lifetime = token_refresh.marker_lifetime


def oauth_redirect_uri() -> str:
    """The callback URL registered with Pleo: ``PUBLIC_BASE_URL`` + ``/oauth/pleo/callback/``."""
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("pleo-oauth-callback")


def oauth_base_url(*, credential: Credential) -> str:
    """The credential's OAuth base URL override, or the PLEO_OAUTH_BASE_URL setting."""
    return (credential.oauth_base_url or settings.PLEO_OAUTH_BASE_URL).rstrip("/")


def _refused(credential: Credential, exc: Exception) -> str:
    where = (
        "The credential's OAuth base URL" if credential.oauth_base_url else "PLEO_OAUTH_BASE_URL"
    )
    return f"{where} is refused: {exc}."


@sensitive_variables("secret")
def oauth_config(*, credential: Credential) -> pleo_oauth.OAuthConfig:
    if credential.kind != Credential.Kind.OAUTH:
        raise ValueError(f"credential {credential.pk} is not an OAuth credential")
    secret = credential.oauth_client_secret
    return pleo_oauth.OAuthConfig(
        base_url=oauth_base_url(credential=credential),
        client_id=credential.oauth_client_id,
        client_secret=secret,
    )


# --- Connect ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectStart:
    """Where to send the browser, and what to remember in the session until it comes back."""

    url: str
    state: str
    verifier: str = field(repr=False)
    credential_id: int
    client_id: str


def oauth_connect_begin(*, credential: Credential) -> ConnectStart:
    if credential.kind != Credential.Kind.OAUTH:
        raise ConnectFailed(f"Credential '{credential.name}' is not an OAuth 2.0 credential.")
    if not credential.oauth_client_id:
        raise ConnectFailed("Set the OAuth client id on the credential first.")
    if not credential.oauth_client_secret_ciphertext:
        raise ConnectFailed("Set the OAuth client secret on the credential first.")
    pkce = pleo_oauth.new_pkce()
    state = pleo_oauth.new_state()
    try:
        url = pleo_oauth.authorize_url(
            base_url=oauth_base_url(credential=credential),
            client_id=credential.oauth_client_id,
            redirect_uri=oauth_redirect_uri(),
            scopes=oauth_scopes(),
            state=state,
            challenge=pkce.challenge,
        )
    except HostNotAllowed as exc:
        raise ConnectFailed(_refused(credential, exc)) from None
    return ConnectStart(
        url=url,
        state=state,
        verifier=pkce.verifier,
        credential_id=credential.pk,
        client_id=credential.oauth_client_id,
    )


@sensitive_variables("code", "code_verifier", "tokens", "config")
def oauth_connect_complete(
    *, credential_id: int, code: str, code_verifier: str, client_id: str | None = None
) -> Credential:
    """Exchange ``code`` and store both tokens (status OK). Raises :class:`ConnectFailed` with
    the admin's message; nothing is changed then."""
    try:
        credential = Credential.objects.get(pk=credential_id)
    except Credential.DoesNotExist:
        raise ConnectFailed("The credential no longer exists.") from None
    if credential.kind != Credential.Kind.OAUTH:
        raise ConnectFailed(f"Credential '{credential.name}' is no longer an OAuth credential.")
    if client_id is not None and credential.oauth_client_id != client_id:
        raise ConnectFailed("The credential's OAuth client id changed meanwhile: connect again.")
    try:
        config = oauth_config(credential=credential)
    except HostNotAllowed as exc:
        raise ConnectFailed(_refused(credential, exc)) from None
    except (crypto.SecretDecryptionError, crypto.EncryptionKeysMissing, ValueError) as exc:
        raise ConnectFailed(f"The OAuth client secret cannot be used: {exc}") from None
    received_at = clock.now()
    try:
        tokens = pleo_oauth.exchange_code(
            config, code=code, redirect_uri=oauth_redirect_uri(), code_verifier=code_verifier
        )
    except pleo_oauth.OAuthInvalidGrant as exc:
        raise ConnectFailed(
            f"Pleo refused the authorization code ({exc.description}). Nothing was changed; "
            f"use 'Connect to Pleo' again."
        ) from None
    except pleo_oauth.OAuthError as exc:
        raise ConnectFailed(
            f"Exchanging the authorization code with Pleo failed: {exc}. Nothing was changed; "
            f"use 'Connect to Pleo' again."
        ) from None
    _store_connected(credential, tokens, received_at)
    credential.refresh_from_db()
    logger.info("Credential %s connected to Pleo with OAuth 2.0", credential.pk)
    return credential


def _store_connected(
    credential: Credential, tokens: pleo_oauth.TokenSet, received_at: datetime
) -> None:
    changed = {}
    if credential.status != Credential.Status.OK:
        changed["status_changed_at"] = clock.now()
    token_refresh.store_connected_tokens(
        owner=TOKENS, pk=credential.pk, tokens=tokens, received_at=received_at, **changed
    )


# --- Status ---------------------------------------------------------------------------------------


def credential_mark_needs_reauthorisation(
    *, credential_id: int, reason: str, refresh_token_ciphertext: str | None = None
) -> bool:
    """Mark the credential ``needs_reauthorisation`` (and clear the refresh marker). With
    ``refresh_token_ciphertext``, only if that refresh token is still the stored one (a reconnect
    meanwhile wins). The first reason is kept: a credential already not OK is left alone."""
    rows = Credential.objects.filter(pk=credential_id, status=Credential.Status.OK)
    if refresh_token_ciphertext is not None:
        rows = rows.filter(refresh_token_ciphertext=refresh_token_ciphertext)
    updated = rows.update(
        status=Credential.Status.NEEDS_REAUTHORISATION,
        last_error=reason[:2000],
        status_changed_at=clock.now(),
        refreshing_until=None,
        updated_at=timezone.now(),
    )
    if updated:
        logger.warning("Credential %s needs re-authorisation: %s", credential_id, reason)
        notifications.notification_request(
            kind=notifications.Kind.REAUTHORISATION, credential=credential_id
        )
    return bool(updated)


# --- Refresh (the generic compare-and-set loop: exports.services.token_refresh) ------------------


def _read(credential_id: int) -> token_refresh.TokenRow:
    try:
        values = Credential.objects.values("name", "kind", *token_refresh.ROW_FIELDS).get(
            pk=credential_id
        )
    except Credential.DoesNotExist:
        raise CredentialUnusable(f"Credential {credential_id} no longer exists.") from None
    kind = values.pop("kind")
    problem = "" if kind == Credential.Kind.OAUTH else "is not an OAuth credential"
    return token_refresh.TokenRow(**values, problem=problem)


def _unusable(name: str, status: str, reason: str) -> CredentialUnusable:
    if status == Credential.Status.OK:  # usable by status, not for tokens: ``reason`` says why
        return CredentialUnusable(f"Credential '{name}' {reason.rstrip('.')}.")
    return CredentialUnusable(
        credential_unusable_message(name=name, status=status, last_error=reason)
    )


def _mark(credential_id: int, reason: str, refresh_token_ciphertext: str | None) -> bool:
    return credential_mark_needs_reauthorisation(
        credential_id=credential_id,
        reason=reason,
        refresh_token_ciphertext=refresh_token_ciphertext,
    )


def _config(credential_id: int) -> pleo_oauth.OAuthConfig:
    return oauth_config(credential=Credential.objects.get(pk=credential_id))


TOKENS = token_refresh.TokenOwner(
    model=Credential,
    service="Pleo",
    label="Credential",
    read=_read,
    config=_config,
    mark=_mark,
    unusable=_unusable,
    margin=oauth_refresh_margin,
)


def oauth_access_token(*, credential_id: int) -> str:
    """A usable access token, refreshed first when it expires within the margin (one refresh in
    flight per credential; other callers wait for it). Raises ``CredentialUnusable`` when the
    credential may not be used, ``PleoUnavailable``/``PleoAuthError`` when a needed refresh
    could not be made."""
    return token_refresh.token_access(owner=TOKENS, pk=credential_id)


def oauth_refresh_after_unauthorized(*, credential_id: int, rejected_token: str | None) -> bool:
    """Pleo answered 401 to ``rejected_token``: make sure a newer token is stored (refreshing
    once, unless another caller already did). True when one is."""
    return token_refresh.token_refresh_after_unauthorized(
        owner=TOKENS, pk=credential_id, rejected_token=rejected_token
    )


# --- The client's bearer auth ---------------------------------------------------------------------


def oauth_bearer_auth(*, credential_id: int) -> tuple[BearerAuth, Callable[[PleoAuthError], None]]:
    """``BearerAuth`` for a client of this credential, and its ``on_auth_failure``.

    ``get_token`` reads (and if needed refreshes) the token for every request; ``refresh`` is
    the client's one refresh after a 401. Only a 401 that follows a successful refresh (the
    client's second 401) marks the credential ``needs_reauthorisation``; a 403 changes nothing.
    """
    last: dict = {"token": None, "refreshed": False}

    def get_token() -> str:
        token = oauth_access_token(credential_id=credential_id)
        last["token"] = token
        return token

    def refresh() -> bool:
        last["refreshed"] = False
        last["refreshed"] = oauth_refresh_after_unauthorized(
            credential_id=credential_id, rejected_token=last["token"]
        )
        return last["refreshed"]

    def on_auth_failure(exc: PleoAuthError) -> None:
        if exc.status == 401 and last["refreshed"]:
            credential_mark_needs_reauthorisation(
                credential_id=credential_id,
                reason=(
                    f"Pleo refused a freshly refreshed access token ({exc.status} "
                    f"{exc.error_type or 'UNAUTHORIZED'}). Reconnect to Pleo."
                ),
            )

    return BearerAuth(get_token, refresh), on_auth_failure
