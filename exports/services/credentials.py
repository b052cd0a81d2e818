"""Building Pleo clients from stored credentials, and the credential status rules.

The client module knows nothing of our models: this is where a credential becomes a client and
where a final 401/403 marks an API-key credential invalid (no further calls until an admin edits
it).
"""

from __future__ import annotations

import logging
import uuid

from exports import clock
from exports.models import Company, Credential
from exports.pleo.client import ApiKeyAuth, ClientConfig, PleoAuthError, PleoClient

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


def client_for_credential(credential: Credential, *, run_id: uuid.UUID | None) -> PleoClient:
    if credential.status != Credential.Status.OK:
        raise CredentialUnusable(
            f"Credential '{credential.name}' is {credential.get_status_display().lower()}"
            + (f": {credential.last_error}" if credential.last_error else "")
            + ". Edit it in the admin to use it again."
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
        raise CredentialUnusable(
            f"Credential '{credential.name}' uses OAuth 2.0, which is not connected yet."
        )
    return PleoClient(
        config=config,
        auth=auth,
        request_id=str(run_id) if run_id else None,
        on_auth_failure=on_auth_failure,
    )


def client_for_company(company: Company, *, run_id: uuid.UUID | None) -> PleoClient:
    return client_for_credential(company.credential, run_id=run_id)
