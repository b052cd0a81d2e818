"""Xero's OAuth 2.0 (authorization code with PKCE, rotating refresh tokens): the Pleo OAuth
module's requests and error rules (:mod:`exports.pleo.oauth`: never retried, unknown outcomes kept
apart) with Xero's endpoints and client authentication: consent at
``XERO_LOGIN_BASE_URL`` + ``/identity/connect/authorize``, tokens at ``XERO_IDENTITY_BASE_URL`` +
``/connect/token`` with HTTP Basic client authentication (docs/xero-openapi/README.md; Xero's
"standard authorization code flow" page). Both base URLs are checked against
``XERO_ALLOWED_HOSTS``. Access tokens last 30 minutes; refresh tokens rotate.
"""

from __future__ import annotations

from exports.pleo import oauth as pleo_oauth
from exports.xero import hosts

AUTHORIZE_PATH = "/identity/connect/authorize"
TOKEN_PATH = "/connect/token"


def oauth_config(*, identity_base_url: str, client_id: str, client_secret: str):
    """The token endpoint's configuration (``HostNotAllowed``/``ValueError`` when unusable)."""
    return pleo_oauth.OAuthConfig(
        base_url=identity_base_url,
        client_id=client_id,
        client_secret=client_secret,
        token_path=TOKEN_PATH,
        policy=hosts.policy_from_settings(),
        service="Xero",
        basic_client_auth=True,
    )


def authorize_url(
    *, login_base_url: str, client_id: str, redirect_uri: str, scopes: str, state: str, challenge
) -> str:
    return pleo_oauth.authorize_url(
        base_url=login_base_url,
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        state=state,
        challenge=challenge,
        path=AUTHORIZE_PATH,
        policy=hosts.policy_from_settings(),
    )


__all__ = ["AUTHORIZE_PATH", "TOKEN_PATH", "authorize_url", "oauth_config"]
