"""The OAuth tests' helpers (``tests/test_oauth*.py``, and the tests that need an OAuth
credential): a stored OAuth credential, one connected to the Pleo sandbox's OAuth server, a token
endpoint's answer, and the ``oauth_settings`` fixture (import it into a module to use it).
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from exports import clock
from exports.models import Credential
from tests import secrets_registry

AUTH = "https://auth.example.test"
API = "https://api.example.test"
TOKEN_URL = AUTH + "/oauth/token"
JOBS_URL = API + "/v3/export-jobs"
REDIRECT = "http://testserver/oauth/pleo/callback/"
EMPTY_PAGE = {"data": [], "pagination": {"hasNextPage": False, "hasPreviousPage": False}}


def make_oauth_credential(
    *,
    client_id="bridge-client",
    client_secret=None,
    access_token=None,
    refresh_token=None,
    expires_in: float | None = 3600,
    api_base_url=API,
    name="OAuth credential",
    **extra,
) -> Credential:
    """An OAuth credential with stored (registered) tokens; ``None`` tokens: not connected."""
    credential = Credential(
        name=name,
        kind=Credential.Kind.OAUTH,
        oauth_client_id=client_id,
        api_base_url=api_base_url,
        **extra,
    )
    credential.oauth_client_secret = secrets_registry.register(
        client_secret or "ocs_unit_client_secret_9876"
    )
    if access_token:
        credential.access_token = secrets_registry.register(access_token)
    if refresh_token:
        credential.refresh_token = secrets_registry.register(refresh_token)
    if expires_in is not None:
        credential.access_token_expires_at = clock.now() + timedelta(seconds=expires_in)
    credential.save()
    return credential


def sandbox_oauth(sandbox, *, lifetime=3600, expired=False, redirect_uri=REDIRECT, scopes=None):
    """A sandbox company, OAuth client and token family, and a credential holding the tokens.
    ``expired``: the access token has expired, for the sandbox and for us."""
    state = sandbox.state
    company = state.add_company("OAuth ApS")
    client = state.add_oauth_client(
        redirect_uris=[redirect_uri], company_id=company.id, name="Bridge", scopes=scopes
    )
    state.set_switches(oauth_access_token_lifetime=lifetime)
    tokens = state.oauth_issue_tokens(client.client_id)
    credential = make_oauth_credential(
        client_id=client.client_id,
        client_secret=client.client_secret,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        expires_in=-10 if expired else lifetime,
        api_base_url=sandbox.url,
    )
    if expired:
        state.advance_clock(lifetime + 10)
    return SimpleNamespace(company=company, client=client, tokens=tokens, credential=credential)


def token_answer(access="at_new_0001_abcd", refresh="rt_new_0001_abcd", expires_in=3600):
    secrets_registry.register(access)
    secrets_registry.register(refresh)
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": "export-jobs:read",
    }


@pytest.fixture
def oauth_settings(settings):
    settings.PLEO_OAUTH_BASE_URL = AUTH
    settings.PUBLIC_BASE_URL = "http://testserver"
    settings.PLEO_OAUTH_REFRESH_MARGIN_SECONDS = 60
    return settings
