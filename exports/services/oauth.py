"""OAuth 2.0 credentials: connecting from the admin, and the one place tokens are refreshed.

Connect (``oauth_connect_begin`` → Pleo's consent page → ``oauth_connect_complete``): a fresh
PKCE verifier and ``state`` per attempt (the views keep both in the admin user's session), the
code exchanged once (both steps shared with Xero: :mod:`exports.services.oauth_consent`), both
tokens stored encrypted with the access token's expiry, status OK.

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
from datetime import datetime

from django.conf import settings
from django.urls import reverse
from django.views.decorators.debug import sensitive_variables

from exports import clock, crypto
from exports.models import Credential
from exports.notifications import service as notifications
from exports.pleo import BearerAuth, PleoAuthError
from exports.pleo import oauth as pleo_oauth
from exports.pleo.hosts import HostNotAllowed
from exports.services import token_refresh
from exports.services.credential_errors import CredentialUnusable, credential_unusable_message
from exports.services.oauth_consent import Consent, ConsentStart

logger = logging.getLogger(__name__)

POLL_MAX_SECONDS = token_refresh.POLL_MAX_SECONDS


class ConnectFailed(Exception):
    """Connecting could not be started or completed; ``str()`` is the admin's message."""


# --- Settings and configuration -----------------------------------------------------------------


def oauth_scopes() -> str:
    return " ".join(str(settings.PLEO_OAUTH_SCOPES).split())


oauth_marker_lifetime = token_refresh.marker_lifetime


def oauth_redirect_uri() -> str:
    """The callback URL registered with Pleo: ``PUBLIC_BASE_URL`` + ``/oauth/pleo/callback/``."""
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("pleo-oauth-callback")


def oauth_base_url(*, credential: Credential) -> str:
    """The credential's OAuth base URL override, or the PLEO_OAUTH_BASE_URL setting."""
    return (credential.oauth_base_url or settings.PLEO_OAUTH_BASE_URL).rstrip("/")


def _where(credential: Credential) -> str:
    """Where the OAuth base URL comes from, for the message when its host is refused."""
    return "The credential's OAuth base URL" if credential.oauth_base_url else "PLEO_OAUTH_BASE_URL"


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


CONSENT = Consent(
    service="Pleo", button="Connect to Pleo", failed=ConnectFailed, redirect_uri=oauth_redirect_uri
)


def oauth_connect_begin(*, credential: Credential) -> ConsentStart:
    """The consent page's URL; ``remember`` holds ``credential_id`` and ``client_id``."""
    if credential.kind != Credential.Kind.OAUTH:
        raise ConnectFailed(f"Credential '{credential.name}' is not an OAuth 2.0 credential.")
    if not credential.oauth_client_id:
        raise ConnectFailed("Set the OAuth client id on the credential first.")
    if not credential.oauth_client_secret_ciphertext:
        raise ConnectFailed("Set the OAuth client secret on the credential first.")
    return CONSENT.begin(
        pleo_oauth.authorize_url,
        where=_where(credential),
        remember={"credential_id": credential.pk, "client_id": credential.oauth_client_id},
        base_url=oauth_base_url(credential=credential),
        client_id=credential.oauth_client_id,
        scopes=oauth_scopes(),
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
        raise ConnectFailed(f"{_where(credential)} is refused: {exc}.") from None
    except (crypto.SecretDecryptionError, crypto.EncryptionKeysMissing, ValueError) as exc:
        raise ConnectFailed(f"The OAuth client secret cannot be used: {exc}") from None
    tokens, received_at = CONSENT.exchange(config, code=code, code_verifier=code_verifier)
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


def credential_mark_needs_reauthorisation(*, credential_id: int, reason: str) -> bool:
    """Mark the credential ``needs_reauthorisation`` (and clear the refresh marker), then log it
    and ask for the re-authorisation notification. The first reason is kept: a credential
    already not OK is left alone (False)."""
    return token_refresh.token_mark_needs_reauthorisation(
        owner=TOKENS, pk=credential_id, reason=reason
    )


def _marked(credential_id: int, reason: str) -> None:
    logger.warning("Credential %s needs re-authorisation: %s", credential_id, reason)
    notifications.notification_request(
        kind=notifications.Kind.REAUTHORISATION, credential=credential_id
    )


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


def _config(credential_id: int) -> pleo_oauth.OAuthConfig:
    return oauth_config(credential=Credential.objects.get(pk=credential_id))


TOKENS = token_refresh.TokenOwner(
    model=Credential,
    service="Pleo",
    label="Credential",
    read=_read,
    config=_config,
    marked=_marked,
    unusable=_unusable,
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
    bearer = token_refresh.TokenBearer(owner=TOKENS, pk=credential_id)

    def on_auth_failure(exc: PleoAuthError) -> None:
        if exc.status == 401 and bearer.refreshed:
            credential_mark_needs_reauthorisation(
                credential_id=credential_id,
                reason=(
                    f"Pleo refused a freshly refreshed access token ({exc.status} "
                    f"{exc.error_type or 'UNAUTHORIZED'}). Reconnect to Pleo."
                ),
            )

    return bearer.auth, on_auth_failure
