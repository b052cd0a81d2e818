"""OAuth 2.0 credentials: connecting from the admin, and the one place tokens are refreshed.

Connect (``oauth_connect_begin`` → Pleo's consent page → ``oauth_connect_complete``): a fresh
PKCE verifier and ``state`` per attempt (the views keep both in the admin user's session), the
code exchanged once, both tokens stored encrypted with the access token's expiry, status OK.

Refresh (``oauth_access_token`` / ``oauth_refresh_after_unauthorized``), at most one in flight per
credential across processes and machines, without holding a database lock across the HTTP call:

1. A caller whose access token expires within ``PLEO_OAUTH_REFRESH_MARGIN_SECONDS`` tries to set
   ``Credential.refreshing_until`` with one compare-and-set UPDATE (marker empty, status OK, and
   the refresh token still the one it read). Exactly one caller wins.
2. The winner presents the refresh token once (no retry), then saves the new access and refresh
   tokens and clears the marker in one UPDATE, again guarded by the refresh token it presented
   (so tokens from an older authorisation never overwrite a reconnect).
3. Everyone else polls the row with short sleeps until the marker is cleared (then uses the new
   token), the status changes (then stops), or the marker's deadline passes.
4. A refresh whose outcome is unknown (read timeout, dropped connection, 5xx, unreadable answer)
   may have rotated the refresh token at Pleo; presenting it again would revoke the whole family.
   So it is never retried: the row is re-read and, if no new token arrived, the credential is
   marked ``needs_reauthorisation`` with the reason. A marker whose deadline passed is the same
   case (its holder stopped or hung mid-refresh) and is treated the same way.
5. ``invalid_grant`` marks the credential ``needs_reauthorisation``; every later use raises
   ``CredentialUnusable`` (:mod:`exports.services.credential_errors`) with the reason (no HTTP
   call).

Nothing here logs or puts in an exception a token, code, verifier or client secret.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from exports import clock, crypto
from exports.models import Credential
from exports.notifications import service as notifications
from exports.pleo import BearerAuth, PleoAuthError, PleoUnavailable
from exports.pleo import oauth as pleo_oauth
from exports.pleo.hosts import HostNotAllowed
from exports.services.credential_errors import CredentialUnusable, credential_unusable_message

logger = logging.getLogger(__name__)

# How long a refresh may hold the marker: the token call's timeouts plus room for the save.
MARKER_SLACK_SECONDS = 20.0
POLL_FIRST_SECONDS = 0.02
POLL_MAX_SECONDS = 0.2

_FIELDS = (
    "name",
    "kind",
    "status",
    "last_error",
    "oauth_client_id",
    "access_token_ciphertext",
    "access_token_expires_at",
    "refresh_token_ciphertext",
    "refreshing_until",
)


class ConnectFailed(Exception):
    """Connecting could not be started or completed; ``str()`` is the admin's message."""


# --- Settings and configuration -----------------------------------------------------------------


def oauth_scopes() -> str:
    return " ".join(str(settings.PLEO_OAUTH_SCOPES).split())


def oauth_refresh_margin() -> timedelta:
    return timedelta(seconds=float(settings.PLEO_OAUTH_REFRESH_MARGIN_SECONDS))


def oauth_marker_lifetime() -> timedelta:
    return timedelta(
        seconds=pleo_oauth.CONNECT_TIMEOUT + pleo_oauth.READ_TIMEOUT + MARKER_SLACK_SECONDS
    )


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


@sensitive_variables("tokens", "access", "refresh")
def _store_connected(
    credential: Credential, tokens: pleo_oauth.TokenSet, received_at: datetime
) -> None:
    access = crypto.encrypt(tokens.access_token)
    refresh = crypto.encrypt(tokens.refresh_token)
    fields = {
        "access_token_ciphertext": access,
        "refresh_token_ciphertext": refresh,
        "access_token_expires_at": tokens.expires_at(received_at),
        "refreshing_until": None,
        "status": Credential.Status.OK,
        "last_error": "",
        "updated_at": timezone.now(),
    }
    if credential.status != Credential.Status.OK:
        fields["status_changed_at"] = clock.now()
    with transaction.atomic():
        Credential.objects.filter(pk=credential.pk).update(**fields)


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


# --- Refresh --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    name: str
    kind: str
    status: str
    last_error: str
    oauth_client_id: str
    access_token_ciphertext: str
    access_token_expires_at: datetime | None
    refresh_token_ciphertext: str
    refreshing_until: datetime | None

    def usable_or_raise(self) -> None:
        if self.status != Credential.Status.OK:
            raise CredentialUnusable(
                credential_unusable_message(
                    name=self.name, status=self.status, last_error=self.last_error
                )
            )
        if self.kind != Credential.Kind.OAUTH:
            raise CredentialUnusable(f"Credential '{self.name}' is not an OAuth credential.")

    def fresh(self, now: datetime) -> bool:
        """A stored access token not within the refresh margin of its expiry. A token without a
        known expiry counts as fresh: it is refreshed when Pleo answers 401."""
        if not self.access_token_ciphertext:
            return False
        expires = self.access_token_expires_at
        return expires is None or expires - oauth_refresh_margin() > now


def _read(credential_id: int) -> _Row:
    try:
        values = Credential.objects.values(*_FIELDS).get(pk=credential_id)
    except Credential.DoesNotExist:
        raise CredentialUnusable(f"Credential {credential_id} no longer exists.") from None
    return _Row(**values)


def oauth_access_token(*, credential_id: int) -> str:
    """A usable access token, refreshed first when it expires within the margin (one refresh in
    flight per credential; other callers wait for it). Raises ``CredentialUnusable`` when the
    credential may not be used, ``PleoUnavailable``/``PleoAuthError`` when a needed refresh
    could not be made."""
    row = _read(credential_id)
    row.usable_or_raise()
    if row.fresh(clock.now()):
        return crypto.decrypt(row.access_token_ciphertext)
    return _refresh(credential_id, stale=row.access_token_ciphertext, force=False)


def oauth_refresh_after_unauthorized(*, credential_id: int, rejected_token: str | None) -> bool:
    """Pleo answered 401 to ``rejected_token``: make sure a newer token is stored (refreshing
    once, unless another caller already did). True when one is."""
    row = _read(credential_id)
    row.usable_or_raise()
    stale = row.access_token_ciphertext
    if rejected_token is not None and stale and crypto.decrypt(stale) != rejected_token:
        if row.fresh(clock.now()):
            return True  # another caller refreshed since we took the token
    token = _refresh(credential_id, stale=stale, force=True)
    return bool(token) and token != rejected_token


def _refresh(credential_id: int, *, stale: str, force: bool) -> str:
    """The refresh loop of the module docstring. ``stale`` is the access token ciphertext the
    caller found wanting; any other fresh token stored meanwhile is used instead."""
    delay = POLL_FIRST_SECONDS
    give_up_at = time.monotonic() + oauth_marker_lifetime().total_seconds() + 10
    while True:
        row = _read(credential_id)
        row.usable_or_raise()
        now = clock.now()
        if row.fresh(now) and (row.access_token_ciphertext != stale or not force):
            return crypto.decrypt(row.access_token_ciphertext)
        if not row.refresh_token_ciphertext:
            reason = "No refresh token is stored: connect the credential to Pleo."
            credential_mark_needs_reauthorisation(credential_id=credential_id, reason=reason)
            raise CredentialUnusable(
                credential_unusable_message(
                    name=row.name, status=Credential.Status.NEEDS_REAUTHORISATION, last_error=reason
                )
            )
        marker = row.refreshing_until
        if marker is None:
            until = now + oauth_marker_lifetime()
            taken = Credential.objects.filter(
                pk=credential_id,
                status=Credential.Status.OK,
                refreshing_until__isnull=True,
                refresh_token_ciphertext=row.refresh_token_ciphertext,
            ).update(refreshing_until=until)
            if taken:
                return _refresh_holding_marker(credential_id, row, until, force=force)
            continue  # someone else took it (or rotated the token): read again
        if marker <= now:
            reason = (
                f"A token refresh started at "
                f"{marker - oauth_marker_lifetime():%Y-%m-%d %H:%M:%S} UTC "
                f"never finished (its process stopped or hung), so Pleo may have rotated the "
                f"refresh token. It is not presented again, since re-using a rotated refresh "
                f"token revokes every token of the authorisation. Reconnect to Pleo."
            )
            credential_mark_needs_reauthorisation(
                credential_id=credential_id,
                reason=reason,
                refresh_token_ciphertext=row.refresh_token_ciphertext,
            )
            Credential.objects.filter(pk=credential_id, refreshing_until=marker).update(
                refreshing_until=None
            )
            continue
        if time.monotonic() >= give_up_at:
            raise PleoUnavailable("timed out waiting for another process's token refresh")
        time.sleep(delay)
        delay = min(delay * 1.5, POLL_MAX_SECONDS)


def _release_marker(credential_id: int, until: datetime) -> None:
    Credential.objects.filter(pk=credential_id, refreshing_until=until).update(
        refreshing_until=None
    )


@sensitive_variables("refresh_token", "tokens", "config", "credential")
def _refresh_holding_marker(credential_id: int, row: _Row, until: datetime, *, force: bool) -> str:
    """We hold the marker: present the refresh token once and store the outcome."""
    try:
        credential = Credential.objects.get(pk=credential_id)
        config = oauth_config(credential=credential)
        refresh_token = crypto.decrypt(row.refresh_token_ciphertext)
    except ValueError as exc:  # no client id: nothing can be sent
        _release_marker(credential_id, until)
        raise CredentialUnusable(f"Credential '{row.name}' cannot refresh its token: {exc}.")
    except BaseException:
        _release_marker(credential_id, until)  # nothing was sent
        raise
    received_at = clock.now()
    try:
        tokens = pleo_oauth.refresh_tokens(config, refresh_token=refresh_token)
    except pleo_oauth.OAuthInvalidGrant as exc:
        reason = (
            f"Pleo refused the refresh token ({exc.description}): the authorisation is "
            f"expired or revoked. Reconnect to Pleo."
        )
        raise _needs_reauthorisation(credential_id, row, until, reason) from None
    except pleo_oauth.OAuthOutcomeUnknown as exc:
        return _after_unknown_outcome(credential_id, row, until, exc)
    except pleo_oauth.OAuthUnavailable as exc:
        # Nothing reached Pleo (or it refused to process it): the refresh token is unspent.
        _release_marker(credential_id, until)
        expires = row.access_token_expires_at
        if not force and row.access_token_ciphertext and expires and expires > clock.now():
            logger.warning(
                "Credential %s: token refresh not possible now (%s); using the current access "
                "token, valid until %s",
                credential_id,
                exc,
                expires,
            )
            return crypto.decrypt(row.access_token_ciphertext)
        raise PleoUnavailable(f"token refresh failed: {exc}") from None
    except pleo_oauth.OAuthError as exc:
        _release_marker(credential_id, until)
        raise PleoAuthError(f"Pleo refused the token refresh: {exc}", status=exc.status) from None
    except BaseException:
        # Anything else after the request may have been sent: leave the marker. Its deadline
        # passing is treated as an unknown outcome by whoever comes next.
        logger.error("Credential %s: token refresh interrupted", credential_id)
        raise
    if _store_refreshed(credential_id, row.refresh_token_ciphertext, tokens, received_at):
        logger.info("Credential %s: access token refreshed", credential_id)
        return tokens.access_token
    # The stored refresh token changed while we refreshed (a reconnect in the admin): the
    # newer authorisation wins and ours is discarded.
    _release_marker(credential_id, until)
    logger.warning(
        "Credential %s: refreshed tokens discarded (reconnected meanwhile)", credential_id
    )
    return _current_token_or_raise(credential_id)


def _after_unknown_outcome(
    credential_id: int, row: _Row, until: datetime, exc: pleo_oauth.OAuthError
) -> str:
    """Never re-send: re-read; unless a new token arrived, the credential needs reconnecting."""
    current = _read(credential_id)
    if current.refresh_token_ciphertext != row.refresh_token_ciphertext:
        _release_marker(credential_id, until)
        return _current_token_or_raise(credential_id)
    reason = (
        f"The token refresh had an unknown outcome ({exc}): Pleo may have rotated the refresh "
        f"token without us receiving the new one. It is not presented again, since re-using a "
        f"rotated refresh token revokes every token of the authorisation. Reconnect to Pleo."
    )
    raise _needs_reauthorisation(credential_id, row, until, reason)


def _needs_reauthorisation(
    credential_id: int, row: _Row, until: datetime, reason: str
) -> CredentialUnusable:
    """Mark the credential as needing a reconnect, release the marker; the error to raise."""
    credential_mark_needs_reauthorisation(
        credential_id=credential_id,
        reason=reason,
        refresh_token_ciphertext=row.refresh_token_ciphertext,
    )
    _release_marker(credential_id, until)
    return CredentialUnusable(
        credential_unusable_message(
            name=row.name, status=Credential.Status.NEEDS_REAUTHORISATION, last_error=reason
        )
    )


def _current_token_or_raise(credential_id: int) -> str:
    row = _read(credential_id)
    row.usable_or_raise()
    if not row.access_token_ciphertext:
        raise CredentialUnusable(f"Credential '{row.name}' has no access token: connect it.")
    return crypto.decrypt(row.access_token_ciphertext)


@sensitive_variables("tokens", "access", "refresh")
def _store_refreshed(
    credential_id: int, presented_ciphertext: str, tokens: pleo_oauth.TokenSet, received_at
) -> bool:
    """Both new tokens and the cleared marker in one UPDATE, only if the refresh token we
    presented is still the stored one."""
    access = crypto.encrypt(tokens.access_token)
    refresh = crypto.encrypt(tokens.refresh_token)
    with transaction.atomic():
        updated = Credential.objects.filter(
            pk=credential_id, refresh_token_ciphertext=presented_ciphertext
        ).update(
            access_token_ciphertext=access,
            refresh_token_ciphertext=refresh,
            access_token_expires_at=tokens.expires_at(received_at),
            refreshing_until=None,
            updated_at=timezone.now(),
        )
    return bool(updated)


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
