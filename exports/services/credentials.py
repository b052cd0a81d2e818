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
from dataclasses import dataclass, replace
from enum import StrEnum

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

# CredentialUnusable is defined in a leaf module (oauth raises it too); callers import it from here.
from exports.services.credential_errors import CredentialUnusable, credential_unusable_message

logger = logging.getLogger(__name__)


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


def pleo_client_for_credential(*, credential: Credential, run_id: uuid.UUID | None) -> PleoClient:
    from exports.services import budget, oauth

    if credential.status != Credential.Status.OK:
        raise CredentialUnusable(
            credential_unusable_message(
                name=credential.name, status=credential.status, last_error=credential.last_error
            )
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
        auth, on_auth_failure = oauth.oauth_bearer_auth(credential_id=credential.pk)
    return PleoClient(
        config=config,
        auth=auth,
        session=shared_session(config.base_url),  # keep-alive across this worker's runs
        request_id=str(run_id) if run_id else None,
        on_auth_failure=on_auth_failure,
        before_request=budget.budget_hook_for(credential=credential),  # the shared request budget
    )


def pleo_client_for_company(*, company: Company, run_id: uuid.UUID | None) -> PleoClient:
    return pleo_client_for_credential(credential=company.credential, run_id=run_id)


# --- Test connection --------------------------------------------------------------------------


class ConnectionOutcome(StrEnum):
    ACCEPTED = "accepted"  # Pleo answered the call: the credential works
    REFUSED = "refused"  # Pleo refused it (401/403): marked invalid (API key)
    UNREACHABLE = "unreachable"  # no answer that says either way; the status is unchanged
    NOT_TESTED = "not_tested"  # no call made (unusable, not connected, refused URL)


@dataclass(frozen=True)
class ConnectionCheck:
    outcome: ConnectionOutcome
    message: str

    @property
    def accepted(self) -> bool:
        return self.outcome == ConnectionOutcome.ACCEPTED


TEST_READ_TIMEOUT_SECONDS = 10.0


def credential_api_base_url(*, credential: Credential) -> str:
    """The credential's API base URL override, or the PLEO_API_BASE_URL setting."""
    return (credential.api_base_url or settings.PLEO_API_BASE_URL).rstrip("/")


def credential_test_connection(*, credential: Credential) -> ConnectionCheck:
    """One list call to Pleo with this credential (``GET /v3/export-jobs?limit=1``, for one of
    its companies when it has one), through the request budget, one attempt, with timeouts.

    A 401/403 marks an API-key credential invalid (the client's rule); an OAuth credential goes
    through its token refresh rule. The outcome is stored on the credential (when, and the
    message) and returned; the message never holds a secret."""
    check = _test_connection(credential)
    Credential.objects.filter(pk=credential.pk).update(
        connection_checked_at=clock.now(), connection_check_result=check.message[:500]
    )
    log = logger.info if check.accepted else logger.warning
    log("Credential %s connection test: %s", credential.pk, check.outcome)
    return check


def _test_connection(credential: Credential) -> ConnectionCheck:
    from exports.pleo import BudgetExhausted, PleoError, PleoHTTPError

    company = credential.companies.order_by("pk").first()
    where = f"for {company.name}" if company else "(no company uses it yet)"
    try:
        client = pleo_client_for_credential(credential=credential, run_id=None)
    except CredentialUnusable as exc:
        return ConnectionCheck(ConnectionOutcome.NOT_TESTED, f"Not tested: {exc}")
    except (ValueError, KeyError) as exc:  # an unreadable secret, an empty key
        return ConnectionCheck(ConnectionOutcome.NOT_TESTED, f"Not tested: {exc}")
    client.config = replace(
        client.config,
        max_attempts=1,
        read_timeout=min(client.config.read_timeout, TEST_READ_TIMEOUT_SECONDS),
    )
    url = client.config.base_url
    try:
        client.probe_export_jobs(company_id=company.pleo_company_id if company else None)
    except PleoAuthError as exc:
        return ConnectionCheck(
            ConnectionOutcome.REFUSED,
            f"Pleo at {url} refused the credential {where} ({exc.status}"
            f"{' ' + exc.error_type if exc.error_type else ''}): check the key and its scopes "
            f"(export-jobs:read is needed).",
        )
    except CredentialUnusable as exc:  # OAuth: the token could not be refreshed
        return ConnectionCheck(ConnectionOutcome.REFUSED, f"Pleo at {url} refused it: {exc}")
    except BudgetExhausted:
        return ConnectionCheck(
            ConnectionOutcome.UNREACHABLE,
            "Not tested: this credential's Pleo request budget is spent for now; try again in a "
            "minute.",
        )
    except PleoHTTPError as exc:
        if company is None and exc.status and 400 <= exc.status < 500:
            return ConnectionCheck(
                ConnectionOutcome.ACCEPTED,
                f"Pleo at {url} accepted the credential (it answered {exc.status} without a "
                f"company; add a company to test it fully).",
            )
        return ConnectionCheck(
            ConnectionOutcome.UNREACHABLE, f"Pleo at {url} answered {exc.status}: {exc}"
        )
    except PleoError as exc:
        return ConnectionCheck(ConnectionOutcome.UNREACHABLE, f"Pleo at {url}: {exc}")
    finally:
        client.close()
    return ConnectionCheck(
        ConnectionOutcome.ACCEPTED, f"Pleo at {url} accepted the credential {where}."
    )
