"""Building Pleo clients from stored credentials, and the credential status rules.

The client module knows nothing of our models: this is where a credential becomes a client and
where a final 401/403 marks an API-key credential invalid (no further calls until an admin edits
it). An OAuth credential gets a ``BearerAuth`` from :mod:`exports.services.oauth`: the token is
read (and refreshed a little before expiry, one refresh in flight) for every request, a 401 leads
to one refresh and one re-send, and only a second 401 or ``invalid_grant`` marks the credential
``needs_reauthorisation``.

A credential is only ever used with a Pleo host of ``PLEO_ALLOWED_HOSTS``
(:mod:`exports.pleo.hosts`): a base URL outside it makes the credential unusable for the run,
before its secret is read.
"""

from __future__ import annotations

import logging
import uuid

from django.conf import settings

from exports import clock
from exports.models import Company, Credential
from exports.notifications import service as notifications
from exports.pleo import (
    ApiKeyAuth,
    ClientConfig,
    PleoAuthError,
    PleoClient,
    hosts,
    shared_session,
)

logger = logging.getLogger(__name__)


class CredentialUnusable(Exception):
    """The credential may not be used for calls (invalid, or needs re-authorisation)."""


def credential_mark_invalid(*, credential_id: int, reason: str) -> None:
    updated = Credential.objects.filter(pk=credential_id).update(
        status=Credential.Status.INVALID,
        last_error=reason[:2000],
        status_changed_at=clock.now(),
    )
    if updated:
        logger.warning("Credential %s marked invalid: %s", credential_id, reason)
        notifications.notification_request(
            kind=notifications.Kind.REAUTHORISATION, credential=credential_id
        )


def client_for_credential(credential: Credential, *, run_id: uuid.UUID | None) -> PleoClient:
    from exports.services import budget, oauth

    if credential.status != Credential.Status.OK:
        raise CredentialUnusable(
            oauth.unusable_message(credential.name, credential.status, credential.last_error)
        )
    base_url = credential.api_base_url or settings.PLEO_API_BASE_URL
    problem = hosts.policy_from_settings().problem(base_url)
    if problem:
        # Refused before any secret is read: a stored URL that no form would take now (an old
        # row, a shell) or a changed PLEO_ALLOWED_HOSTS. The client checks again per request.
        fix = (
            "Fix the API base URL on the credential's admin page (and enter its secret again)."
            if credential.api_base_url
            else "Fix the PLEO_API_BASE_URL setting."
        )
        raise CredentialUnusable(
            f"Credential '{credential.name}' is not used: its Pleo URL is refused ({problem}). "
            f"{fix}"
        )
    config = ClientConfig.from_settings(base_url_override=credential.api_base_url or None)
    if credential.kind == Credential.Kind.API_KEY:
        auth = ApiKeyAuth(credential.api_key)

        def on_auth_failure(exc: PleoAuthError) -> None:
            credential_mark_invalid(
                credential_id=credential.pk,
                reason=f"Pleo refused the API key ({exc.status} {exc.error_type or ''}).".replace(
                    " )", ")"
                ),
            )
    else:
        if not credential.refresh_token_ciphertext and not credential.access_token_ciphertext:
            raise CredentialUnusable(
                f"Credential '{credential.name}' uses OAuth 2.0 and is not connected yet: use "
                f"'Connect to Pleo' on its admin page."
            )
        auth, on_auth_failure = oauth.bearer_auth(credential.pk)
    return PleoClient(
        config=config,
        auth=auth,
        session=shared_session(config.base_url),  # keep-alive across this worker's runs
        request_id=str(run_id) if run_id else None,
        on_auth_failure=on_auth_failure,
        before_request=budget.hook_for(credential),  # the shared request budget (issue 11)
    )


def client_for_company(company: Company, *, run_id: uuid.UUID | None) -> PleoClient:
    return client_for_credential(company.credential, run_id=run_id)
