"""One OAuth token refresh in flight per row across processes: the compare-and-set machinery.

Shared by every row that holds rotating OAuth tokens: a Pleo ``Credential``
(:mod:`exports.services.oauth`) and a ``XeroConnection`` (:mod:`exports.services.xero_connections`).
A :class:`TokenOwner` says what differs (the model, the OAuth configuration, the service's name
in messages, how a row is marked "needs re-authorisation"); the rules are the same and live
here only:

1. A caller whose access token expires within the margin tries to set ``refreshing_until`` with
   one compare-and-set UPDATE (marker empty, status OK, and the refresh token still the one it
   read). Exactly one caller wins.
2. The winner presents the refresh token once (no retry), then saves the new access and refresh
   tokens and clears the marker in one UPDATE, again guarded by the refresh token it presented
   (so tokens from an older authorisation never overwrite a reconnect).
3. Everyone else polls the row with short sleeps until the marker is cleared (then uses the new
   token), the status changes (then stops), or the marker's deadline passes.
4. A refresh whose outcome is unknown (read timeout, dropped connection, 5xx, unreadable answer)
   may have rotated the refresh token; presenting it again would revoke the whole family. So it is
   never retried: the row is re-read and, if no new token arrived, the row is marked
   ``needs_reauthorisation`` with the reason. A marker whose deadline passed is the same case.
5. ``invalid_grant`` marks the row ``needs_reauthorisation``.

The row's model must have ``status``, stored as its ``Status`` TextChoices with ``OK`` and
``NEEDS_REAUTHORISATION`` (``CredentialStatus`` and ``XeroConnectionStatus`` in
:mod:`exports.choices`, which share the values ``ok``/``needs_reauthorisation``), ``last_error``,
``access_token_ciphertext``, ``access_token_expires_at``, ``refresh_token_ciphertext``,
``refreshing_until`` and ``updated_at``. Nothing here logs or puts in an exception a token or a
client secret.

What the token endpoint said (its ``error``/``error_description``, an exception's text) goes into
a reason that is logged, audited, stored as the row's ``last_error`` and shown in the admin. It
is scrubbed once, where it enters (:func:`_answer_text`): the refresh token presented, the stored
access token and the client secret become ``[hidden]`` (:mod:`exports.redaction`), for a Pleo
credential and a Xero connection alike, should the identity provider ever quote one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from exports import clock, crypto
from exports.pleo import BearerAuth, PleoAuthError, PleoUnavailable
from exports.pleo import oauth as pleo_oauth
from exports.redaction import without_secrets

logger = logging.getLogger(__name__)

# How long a refresh may hold the marker: the token call's timeouts plus room for the save.
MARKER_SLACK_SECONDS = 20.0
POLL_FIRST_SECONDS = 0.02
POLL_MAX_SECONDS = 0.2

ROW_FIELDS = (
    "status",
    "last_error",
    "access_token_ciphertext",
    "access_token_expires_at",
    "refresh_token_ciphertext",
    "refreshing_until",
)


@dataclass(frozen=True)
class TokenRow:
    """What the loop reads of a row. ``problem``: why it may not be used besides its status."""

    name: str
    status: str
    last_error: str
    access_token_ciphertext: str
    access_token_expires_at: datetime | None
    refresh_token_ciphertext: str
    refreshing_until: datetime | None
    problem: str = ""


def refresh_margin() -> timedelta:
    """``PLEO_OAUTH_REFRESH_MARGIN_SECONDS``: every OAuth row's access token is refreshed this
    long before it expires."""
    return timedelta(seconds=float(settings.PLEO_OAUTH_REFRESH_MARGIN_SECONDS))


@dataclass(frozen=True)
class TokenOwner:
    """One kind of row holding OAuth tokens, and what the loop needs to know about it.

    ``read(pk)`` returns a :class:`TokenRow` (raising ``unusable`` when the row is gone);
    ``config(pk)`` the :class:`~exports.pleo.oauth.OAuthConfig` to refresh with (a
    ``ValueError`` when it cannot be built); ``marked(pk, reason)`` tells someone that the row
    was just marked ``needs_reauthorisation`` (:func:`token_mark_needs_reauthorisation`);
    ``unusable(name, status, reason)`` is the exception a caller gets for a row it may not use;
    ``margin()`` how long before its expiry an access token is refreshed.
    """

    model: Any
    service: str
    label: str
    read: Callable[[int], TokenRow]
    config: Callable[[int], pleo_oauth.OAuthConfig]
    marked: Callable[[int, str], None]
    unusable: Callable[[str, str, str], Exception]
    margin: Callable[[], timedelta] = refresh_margin
    unavailable_error: type[Exception] = PleoUnavailable
    auth_error: type[Exception] = PleoAuthError

    def reconnect(self) -> str:
        return f"Reconnect to {self.service}."

    @property
    def ok(self) -> str:
        """The row's usable status (its model's ``Status.OK``)."""
        return self.model.Status.OK

    @property
    def needs_reauthorisation(self) -> str:
        """The row's "reconnect first" status (its model's ``Status.NEEDS_REAUTHORISATION``)."""
        return self.model.Status.NEEDS_REAUTHORISATION


def marker_lifetime() -> timedelta:
    return timedelta(
        seconds=pleo_oauth.CONNECT_TIMEOUT + pleo_oauth.READ_TIMEOUT + MARKER_SLACK_SECONDS
    )


def _usable_or_raise(owner: TokenOwner, row: TokenRow) -> None:
    if row.status != owner.ok:
        raise owner.unusable(row.name, row.status, row.last_error)
    if row.problem:
        raise owner.unusable(row.name, row.status, row.problem)


def _fresh(owner: TokenOwner, row: TokenRow, now: datetime) -> bool:
    """A stored access token not within the refresh margin of its expiry. A token without a known
    expiry counts as fresh: it is refreshed when the service answers 401."""
    if not row.access_token_ciphertext:
        return False
    expires = row.access_token_expires_at
    return expires is None or expires - owner.margin() > now


def token_access(*, owner: TokenOwner, pk: int) -> str:
    """A usable access token, refreshed first when it expires within the margin (one refresh in
    flight per row; other callers wait for it)."""
    row = owner.read(pk)
    _usable_or_raise(owner, row)
    if _fresh(owner, row, clock.now()):
        return crypto.decrypt(row.access_token_ciphertext)
    return _refresh(owner, pk, stale=row.access_token_ciphertext, force=False)


def token_refresh_after_unauthorized(
    owner: TokenOwner, pk: int, rejected_token: str | None
) -> bool:
    """The service answered 401 to ``rejected_token``: make sure a newer token is stored
    (refreshing once, unless another caller already did). True when one is."""
    row = owner.read(pk)
    _usable_or_raise(owner, row)
    stale = row.access_token_ciphertext
    if rejected_token is not None and stale and crypto.decrypt(stale) != rejected_token:
        if _fresh(owner, row, clock.now()):
            return True  # another caller refreshed since we took the token
    token = _refresh(owner, pk, stale=stale, force=True)
    return bool(token) and token != rejected_token


def _refresh(owner: TokenOwner, pk: int, *, stale: str, force: bool) -> str:
    """The refresh loop of the module docstring. ``stale`` is the access token ciphertext the
    caller found wanting; any other fresh token stored meanwhile is used instead."""
    delay = POLL_FIRST_SECONDS
    give_up_at = time.monotonic() + marker_lifetime().total_seconds() + 10
    while True:
        row = owner.read(pk)
        _usable_or_raise(owner, row)
        now = clock.now()
        if _fresh(owner, row, now) and (row.access_token_ciphertext != stale or not force):
            return crypto.decrypt(row.access_token_ciphertext)
        if not row.refresh_token_ciphertext:
            reason = f"No refresh token is stored: connect {row.name} to {owner.service}."
            token_mark_needs_reauthorisation(owner=owner, pk=pk, reason=reason)
            raise owner.unusable(row.name, owner.needs_reauthorisation, reason)
        marker = row.refreshing_until
        if marker is None:
            until = now + marker_lifetime()
            taken = owner.model.objects.filter(
                pk=pk,
                status=owner.ok,
                refreshing_until__isnull=True,
                refresh_token_ciphertext=row.refresh_token_ciphertext,
            ).update(refreshing_until=until)
            if taken:
                return _refresh_holding_marker(owner, pk, row, until, force=force)
            continue  # someone else took it (or rotated the token): read again
        if marker <= now:
            reason = (
                f"A token refresh started at {marker - marker_lifetime():%Y-%m-%d %H:%M:%S} UTC "
                f"never finished (its process stopped or hung), so {owner.service} may have "
                f"rotated the refresh token. It is not presented again, since re-using a rotated "
                f"refresh token revokes every token of the authorisation. {owner.reconnect()}"
            )
            _mark(owner, pk, reason, row)
            owner.model.objects.filter(pk=pk, refreshing_until=marker).update(refreshing_until=None)
            continue
        if time.monotonic() >= give_up_at:
            raise owner.unavailable_error("timed out waiting for another process's token refresh")
        time.sleep(delay)
        delay = min(delay * 1.5, POLL_MAX_SECONDS)


def _mark(owner: TokenOwner, pk: int, reason: str, row: TokenRow) -> None:
    """Needs re-authorisation, unless the refresh token ``row`` holds was replaced meanwhile."""
    token_mark_needs_reauthorisation(
        owner=owner, pk=pk, reason=reason, refresh_token_ciphertext=row.refresh_token_ciphertext
    )


def _release_marker(owner: TokenOwner, pk: int, until: datetime) -> None:
    owner.model.objects.filter(pk=pk, refreshing_until=until).update(refreshing_until=None)


@sensitive_variables("refresh_token", "tokens", "config")
def _refresh_holding_marker(
    owner: TokenOwner, pk: int, row: TokenRow, until: datetime, *, force: bool
) -> str:
    """We hold the marker: present the refresh token once and store the outcome."""
    try:
        config = owner.config(pk)
        refresh_token = crypto.decrypt(row.refresh_token_ciphertext)
    except ValueError as exc:  # no client id: nothing can be sent
        _release_marker(owner, pk, until)
        raise owner.unusable(row.name, row.status, f"it cannot refresh its token: {exc}.")
    except BaseException:
        _release_marker(owner, pk, until)  # nothing was sent
        raise
    received_at = clock.now()
    try:
        tokens = pleo_oauth.refresh_tokens(config, refresh_token=refresh_token)
    except pleo_oauth.OAuthInvalidGrant as exc:
        said = _answer_text(exc.description, row, config, refresh_token)
        reason = (
            f"{owner.service} refused the refresh token ({said}): the authorisation "
            f"is expired or revoked. {owner.reconnect()}"
        )
        _mark(owner, pk, reason, row)
        _release_marker(owner, pk, until)
        raise owner.unusable(row.name, owner.needs_reauthorisation, reason) from None
    except pleo_oauth.OAuthOutcomeUnknown as exc:
        said = _answer_text(str(exc), row, config, refresh_token)
        return _after_unknown_outcome(owner, pk, row, until, said)
    except pleo_oauth.OAuthUnavailable as exc:
        said = _answer_text(str(exc), row, config, refresh_token)
        # Nothing reached the service (or it refused to process it): the refresh token is unspent.
        _release_marker(owner, pk, until)
        expires = row.access_token_expires_at
        if not force and row.access_token_ciphertext and expires and expires > clock.now():
            logger.warning(
                "%s %s: token refresh not possible now (%s); using the current access "
                "token, valid until %s",
                owner.label,
                pk,
                said,
                expires,
            )
            return crypto.decrypt(row.access_token_ciphertext)
        raise owner.unavailable_error(f"token refresh failed: {said}") from None
    except pleo_oauth.OAuthError as exc:
        _release_marker(owner, pk, until)
        said = _answer_text(str(exc), row, config, refresh_token)
        raise owner.auth_error(
            f"{owner.service} refused the token refresh: {said}", status=exc.status
        ) from None
    except BaseException:
        # Anything else after the request may have been sent: leave the marker. Its deadline
        # passing is treated as an unknown outcome by whoever comes next.
        logger.error("%s %s: token refresh interrupted", owner.label, pk)
        raise
    if _store_refreshed(owner, pk, row.refresh_token_ciphertext, tokens, received_at):
        logger.info("%s %s: access token refreshed", owner.label, pk)
        return tokens.access_token
    # The stored refresh token changed while we refreshed (a reconnect in the admin): the
    # newer authorisation wins and ours is discarded.
    _release_marker(owner, pk, until)
    logger.warning("%s %s: refreshed tokens discarded (reconnected meanwhile)", owner.label, pk)
    return _current_token_or_raise(owner, pk)


@sensitive_variables("refresh_token", "config", "secrets")
def _answer_text(
    text: str, row: TokenRow, config: pleo_oauth.OAuthConfig, refresh_token: str
) -> str:
    """What the token endpoint said (or an exception's text about it), fit for a reason: the
    refresh token presented, the row's access token and the client secret hidden."""
    secrets = [refresh_token, config.client_secret]
    if row.access_token_ciphertext:
        try:
            secrets.append(crypto.decrypt(row.access_token_ciphertext))
        except (crypto.SecretDecryptionError, crypto.EncryptionKeysMissing):
            pass  # not readable here, so not quotable by anyone we sent it to either
    return without_secrets(text, secrets)


def _after_unknown_outcome(
    owner: TokenOwner, pk: int, row: TokenRow, until: datetime, said: str
) -> str:
    """Never re-send: re-read; unless a new token arrived, the row needs reconnecting. ``said``:
    the failure's text, already scrubbed (:func:`_answer_text`)."""
    current = owner.read(pk)
    if current.refresh_token_ciphertext != row.refresh_token_ciphertext:
        _release_marker(owner, pk, until)
        return _current_token_or_raise(owner, pk)
    reason = (
        f"The token refresh had an unknown outcome ({said}): {owner.service} may have rotated the "
        f"refresh token without us receiving the new one. It is not presented again, since "
        f"re-using a rotated refresh token revokes every token of the authorisation. "
        f"{owner.reconnect()}"
    )
    _mark(owner, pk, reason, row)
    _release_marker(owner, pk, until)
    raise owner.unusable(row.name, owner.needs_reauthorisation, reason)


def _current_token_or_raise(owner: TokenOwner, pk: int) -> str:
    row = owner.read(pk)
    _usable_or_raise(owner, row)
    if not row.access_token_ciphertext:
        raise owner.unusable(row.name, row.status, "it has no access token: connect it.")
    return crypto.decrypt(row.access_token_ciphertext)


@sensitive_variables("tokens", "access", "refresh")
def _store_refreshed(
    owner: TokenOwner, pk: int, presented_ciphertext: str, tokens: pleo_oauth.TokenSet, received_at
) -> bool:
    """Both new tokens and the cleared marker in one UPDATE, only if the refresh token we
    presented is still the stored one."""
    access = crypto.encrypt(tokens.access_token)
    refresh = crypto.encrypt(tokens.refresh_token)
    with transaction.atomic():
        updated = owner.model.objects.filter(
            pk=pk, refresh_token_ciphertext=presented_ciphertext
        ).update(
            access_token_ciphertext=access,
            refresh_token_ciphertext=refresh,
            access_token_expires_at=tokens.expires_at(received_at),
            refreshing_until=None,
            updated_at=timezone.now(),
        )
    return bool(updated)


@sensitive_variables("tokens", "values")
def store_connected_tokens(
    *, owner: TokenOwner, pk: int, tokens: pleo_oauth.TokenSet, received_at: datetime, **fields
) -> None:
    """After a consent: both tokens, their expiry, status OK and ``fields`` in one UPDATE."""
    values = {
        "access_token_ciphertext": crypto.encrypt(tokens.access_token),
        "refresh_token_ciphertext": crypto.encrypt(tokens.refresh_token),
        "access_token_expires_at": tokens.expires_at(received_at),
        "refreshing_until": None,
        "status": owner.ok,
        "last_error": "",
        "updated_at": timezone.now(),
        **fields,
    }
    with transaction.atomic():
        owner.model.objects.filter(pk=pk).update(**values)


def token_mark_needs_reauthorisation(
    *, owner: TokenOwner, pk: int, reason: str, refresh_token_ciphertext: str | None = None
) -> bool:
    """Mark the row ``needs_reauthorisation`` with ``reason`` (the refresh marker cleared). With
    ``refresh_token_ciphertext``, only if that refresh token is still the stored one (a reconnect
    meanwhile wins). The first reason is kept: a row already not OK is left alone. When it marks
    (True), ``owner.marked`` tells someone."""
    rows = owner.model.objects.filter(pk=pk, status=owner.ok)
    if refresh_token_ciphertext is not None:
        rows = rows.filter(refresh_token_ciphertext=refresh_token_ciphertext)
    updated = rows.update(
        status=owner.needs_reauthorisation,
        last_error=reason[:2000],
        status_changed_at=clock.now(),
        refreshing_until=None,
        updated_at=timezone.now(),
    )
    if updated:
        owner.marked(pk, reason)
    return bool(updated)


class TokenBearer:
    """The bearer tokens of one row for one client: ``auth`` reads (and if needed refreshes) the
    token for every request, and makes the client's one refresh after a 401. ``refreshed`` says
    whether that refresh stored a newer token, so a 401 after it (the client's second) can mark
    the row."""

    def __init__(self, *, owner: TokenOwner, pk: int) -> None:
        self.owner = owner
        self.pk = pk
        self.token: str | None = None
        self.refreshed = False
        self.auth = BearerAuth(self.get_token, self.refresh)

    def get_token(self) -> str:
        self.token = token_access(owner=self.owner, pk=self.pk)
        return self.token

    def refresh(self) -> bool:
        self.refreshed = False
        self.refreshed = token_refresh_after_unauthorized(
            owner=self.owner, pk=self.pk, rejected_token=self.token
        )
        return self.refreshed


__all__ = [
    "MARKER_SLACK_SECONDS",
    "TokenBearer",
    "TokenOwner",
    "TokenRow",
    "marker_lifetime",
    "store_connected_tokens",
    "token_access",
    "token_mark_needs_reauthorisation",
    "token_refresh_after_unauthorized",
]
