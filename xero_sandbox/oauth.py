"""Xero's OAuth 2.0 server and Identity API, as Xero's developer pages describe them.

* ``GET /identity/connect/authorize`` (``response_type=code``, ``client_id``, ``redirect_uri``,
  ``scope``, ``state``, optional PKCE ``code_challenge``/``code_challenge_method=S256``): a consent
  page listing the demo organisations to connect (checkboxes) with Allow/Cancel; its form posts
  back to the same path and answers 302 to the redirect URI with ``code`` and ``state`` (or
  ``error=access_denied``). Unknown client or redirect URI: a 400 page, never a redirect.
* ``POST /connect/token``: ``authorization_code`` and ``refresh_token`` grants; client
  authentication with HTTP Basic (``client_id:client_secret``) or the two form fields.
  Access tokens are JWT-shaped (HS256 with a sandbox key; claims ``authentication_event_id``,
  ``xero_userid``, ``scope`` …), live ``access_token_lifetime`` seconds (1800); refresh tokens
  (only with ``offline_access``) rotate on every use and lapse ``refresh_token_lifetime`` (60 days)
  after they were issued; a rotated one fails with ``invalid_grant`` (after
  ``refresh_token_grace_seconds``, 0 by default).
* ``POST /connect/revocation`` (``token=<refresh token>``): revokes the authorisation and removes
  its connections.
* ``GET /connections`` (optional ``authEventId``) and ``DELETE /connections/{id}``: the tenants the
  token's user has connected to this app.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

from pleo_sandbox.rendering import camel_fields
from pleo_sandbox.vocabulary import TokenStatus
from xero_sandbox.dates import identity_timestamp
from xero_sandbox.errors import XeroError

BASE_SCOPES = ("openid", "profile", "email", "offline_access")
SCOPE_FAMILIES = ("settings", "contacts", "attachments", "manualjournals", "invoices")
BROAD_FAMILIES = ("settings", "contacts", "attachments", "transactions")
DEMO_USER_ID = "5b9a3f6a-2d0e-4c1b-9a8f-0c2d3e4f5a6b"


def known_scopes(model: str) -> set[str]:
    families = SCOPE_FAMILIES if model == "granular" else BROAD_FAMILIES
    scopes = set(BASE_SCOPES)
    for family in families:
        scopes |= {f"accounting.{family}", f"accounting.{family}.read"}
    return scopes


def token_error(error: str, description: str, status: int = 400) -> XeroError:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="xero"'
    return XeroError(status, {"error": error, "error_description": description}, headers)


@dataclass
class OAuthClient:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    name: str = "Sandbox app"

    def to_dict(self) -> dict:
        return camel_fields(self, "client_id", "client_secret", "redirect_uris", "name")


@dataclass
class Grant:
    """One consent (an ``authentication_event_id``): its scopes and refresh-token family."""

    id: str
    client_id: str
    user_id: str
    scopes: list[str]
    revoked: bool = False


@dataclass
class Connection:
    id: str
    tenant_id: str
    tenant_name: str
    client_id: str
    user_id: str
    auth_event_id: str
    created: datetime
    updated: datetime

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "authEventId": self.auth_event_id,
            "tenantId": self.tenant_id,
            "tenantType": "ORGANISATION",
            "tenantName": self.tenant_name,
            "createdDateUtc": identity_timestamp(self.created),
            "updatedDateUtc": identity_timestamp(self.updated),
        }


@dataclass
class AccessToken:
    grant_id: str
    client_id: str
    user_id: str
    scopes: list[str]
    expires_at: datetime


@dataclass
class RefreshToken:
    grant_id: str
    issued_at: datetime
    status: TokenStatus = TokenStatus.ACTIVE
    rotated_at: datetime | None = None
    successor: dict | None = field(default=None, repr=False)


class OAuthServer:
    """Clients, codes, grants, tokens and connections; all under the state's lock."""

    def __init__(self, state) -> None:
        self.state = state
        self.key = secrets.token_bytes(32)
        self.clients: dict[str, OAuthClient] = {}
        self.codes: dict[str, dict] = {}
        self.grants: dict[str, Grant] = {}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}
        self.connections: dict[str, Connection] = {}

    # -- clients -------------------------------------------------------------------------------
    def add_client(self, client_id=None, *, client_secret=None, redirect_uris, name=None):
        client = OAuthClient(
            client_id or uuid.uuid4().hex.upper(),
            client_secret or secrets.token_urlsafe(36),
            list(redirect_uris),
            name or "Sandbox app",
        )
        self.clients[client.client_id] = client
        return client

    # -- authorize -----------------------------------------------------------------------------
    def _authorize_params(self, params: dict) -> tuple[OAuthClient, str]:
        client = self.clients.get(params.get("client_id", ""))
        redirect_uri = params.get("redirect_uri", "")
        if client is None or redirect_uri not in client.redirect_uris:
            raise XeroError(
                400,
                b"<h1>Error</h1><p>unauthorized_client: Invalid client or redirect URI.</p>",
            )
        return client, redirect_uri

    def _redirect(self, redirect_uri: str, **params) -> XeroError:
        split = urlsplit(redirect_uri)
        query = parse_qsl(split.query) + [(k, v) for k, v in params.items() if v is not None]
        location = split._replace(query=urlencode(query)).geturl()
        return XeroError(302, None, {"Location": location})

    def authorize_page(self, params: dict, tenants) -> bytes:
        client, redirect_uri = self._authorize_params(params)
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
            if k not in ("decision", "tenant")
        )
        options = "".join(
            f'<label><input type="checkbox" name="tenant" value="{t.id}"> '
            f"{html.escape(t.name)}</label><br>"
            for t in tenants
        )
        scopes = html.escape(params.get("scope", ""))
        page = (
            "<!doctype html><html><head><title>Xero sandbox: connect</title></head><body>"
            f"<h1>{html.escape(client.name)} wants to access your Xero data</h1>"
            f"<p>Scopes: {scopes}</p><form method='post' action='/identity/connect/authorize'>"
            f"{hidden}<fieldset><legend>Organisations</legend>{options}</fieldset>"
            "<button name='decision' value='allow'>Allow access</button> "
            "<button name='decision' value='deny'>Cancel</button></form></body></html>"
        )
        return page.encode()

    def authorize_decision(self, params: dict, tenant_ids: list[str], tenants_by_id) -> XeroError:
        """The consent form's answer: a 302 (as an XeroError carrying the Location)."""
        client, redirect_uri = self._authorize_params(params)
        state = params.get("state")
        if params.get("response_type") != "code":
            return self._redirect(redirect_uri, error="unsupported_response_type", state=state)
        scopes = params.get("scope", "").split()
        model = self.state.switches["scope_model"]
        if not scopes or set(scopes) - known_scopes(model):
            return self._redirect(redirect_uri, error="invalid_scope", state=state)
        challenge = params.get("code_challenge")
        if challenge and params.get("code_challenge_method", "S256") != "S256":
            return self._redirect(redirect_uri, error="invalid_request", state=state)
        if params.get("decision") != "allow":
            return self._redirect(redirect_uri, error="access_denied", state=state)
        chosen = [tenants_by_id[t] for t in tenant_ids if t in tenants_by_id]
        if not chosen:
            return self._redirect(redirect_uri, error="access_denied", state=state)
        code = secrets.token_urlsafe(32)
        self.codes[code] = {
            "client_id": client.client_id,
            "redirect_uri": redirect_uri,
            "scopes": scopes,
            "tenants": chosen,
            "challenge": challenge,
            "expires_at": self.state.now()
            + timedelta(seconds=self.state.switches["code_lifetime"]),
        }
        return self._redirect(redirect_uri, code=code, scope=" ".join(scopes), state=state)

    # -- token endpoint ------------------------------------------------------------------------
    def _client_auth(self, authorization: str | None, form: dict) -> OAuthClient:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            if client_id or secret:
                raise token_error("invalid_request", "Use one client authentication method.")
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except ValueError:
                raise token_error("invalid_client", "Malformed Basic credentials.", 401)
            client_id, _, secret = decoded.partition(":")
        client = self.clients.get(client_id or "")
        if client is None or not hmac.compare_digest(client.client_secret, secret or ""):
            raise token_error("invalid_client", "Client authentication failed.", 401)
        return client

    def token(self, authorization: str | None, form: dict) -> dict:
        client = self._client_auth(authorization, form)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange_code(client, form)
        if grant_type == "refresh_token":
            return self._refresh(client, form.get("refresh_token", ""))
        raise token_error("unsupported_grant_type", f"grant_type '{grant_type}' is not supported.")

    def _exchange_code(self, client: OAuthClient, form: dict) -> dict:
        entry = self.codes.pop(form.get("code", ""), None)
        if (
            entry is None
            or entry["client_id"] != client.client_id
            or entry["redirect_uri"] != form.get("redirect_uri")
            or self.state.now() >= entry["expires_at"]
        ):
            raise token_error("invalid_grant", "The authorization code is invalid or expired.")
        if entry["challenge"]:
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if not hmac.compare_digest(expected, entry["challenge"]):
                raise token_error("invalid_grant", "The code_verifier does not match.")
        grant = Grant(str(uuid.uuid4()), client.client_id, DEMO_USER_ID, entry["scopes"])
        self.grants[grant.id] = grant
        now = self.state.now()
        for tenant in entry["tenants"]:
            existing = self._connection_for(client.client_id, grant.user_id, tenant.id)
            if existing is not None:
                existing.updated, existing.auth_event_id = now, grant.id
                continue
            conn = Connection(
                str(uuid.uuid4()),
                tenant.id,
                tenant.name,
                client.client_id,
                grant.user_id,
                grant.id,
                now,
                now,
            )
            self.connections[conn.id] = conn
        return self._issue(grant)

    def _refresh(self, client: OAuthClient, presented: str) -> dict:
        record = self.refresh.get(presented)
        now = self.state.now()
        grant = self.grants.get(record.grant_id) if record else None
        if record is None or grant is None or grant.client_id != client.client_id:
            raise token_error("invalid_grant", "The refresh token is invalid.")
        if grant.revoked or record.status == TokenStatus.REVOKED:
            raise token_error("invalid_grant", "The refresh token has been revoked.")
        lifetime = timedelta(seconds=self.state.switches["refresh_token_lifetime"])
        if now >= record.issued_at + lifetime:
            raise token_error("invalid_grant", "The refresh token has expired.")
        if record.status == TokenStatus.ROTATED:
            grace = timedelta(seconds=self.state.switches["refresh_token_grace_seconds"])
            if record.rotated_at and now < record.rotated_at + grace and record.successor:
                return dict(record.successor)
            raise token_error("invalid_grant", "The refresh token has already been used.")
        answer = self._issue(grant)
        record.status, record.rotated_at, record.successor = TokenStatus.ROTATED, now, answer
        return answer

    def _issue(self, grant: Grant) -> dict:
        now = self.state.now()
        lifetime = int(self.state.switches["access_token_lifetime"])
        access = self._jwt(grant, now, lifetime)
        self.access[access] = AccessToken(
            grant.id,
            grant.client_id,
            grant.user_id,
            list(grant.scopes),
            now + timedelta(seconds=lifetime),
        )
        answer = {
            "access_token": access,
            "expires_in": lifetime,
            "token_type": "Bearer",
            "scope": " ".join(grant.scopes),
        }
        if "offline_access" in grant.scopes:
            refresh = secrets.token_urlsafe(32)
            self.refresh[refresh] = RefreshToken(grant.id, now)
            answer["refresh_token"] = refresh
        return answer

    def _jwt(self, grant: Grant, now: datetime, lifetime: int) -> str:
        def part(value: dict) -> str:
            raw = json.dumps(value, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        issued = int(now.timestamp())
        claims = {
            "nbf": issued,
            "exp": issued + lifetime,
            "iss": self.state.base_url or "http://xero-sandbox",
            "aud": f"{self.state.base_url or 'http://xero-sandbox'}/resources",
            "client_id": grant.client_id,
            "sub": grant.user_id,
            "auth_time": issued,
            "xero_userid": grant.user_id,
            "global_session_id": grant.id.replace("-", ""),
            "jti": uuid.uuid4().hex,
            "authentication_event_id": grant.id,
            "scope": grant.scopes,
        }
        signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}"
        signature = hmac.new(self.key, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

    def revoke(self, token: str) -> None:
        record = self.refresh.get(token)
        if record is None:
            return
        grant = self.grants[record.grant_id]
        grant.revoked = True
        for conn in list(self.connections.values()):
            if conn.client_id == grant.client_id and conn.user_id == grant.user_id:
                del self.connections[conn.id]

    # -- bearer tokens and connections -------------------------------------------------------
    def bearer(self, authorization: str | None) -> AccessToken:
        from xero_sandbox.errors import unauthorized  # noqa: PLC0415 - keeps the header tidy

        scheme, _, token = (authorization or "").strip().partition(" ")
        record = self.access.get(token.strip()) if scheme.lower() == "bearer" else None
        if record is None:
            raise unauthorized()
        if self.grants[record.grant_id].revoked:
            raise unauthorized()
        if self.state.now() >= record.expires_at:
            raise unauthorized("TokenExpired: token expired")
        return record

    def _connection_for(self, client_id: str, user_id: str, tenant_id: str) -> Connection | None:
        return next(
            (
                c
                for c in self.connections.values()
                if (c.client_id, c.user_id, c.tenant_id) == (client_id, user_id, tenant_id)
            ),
            None,
        )

    def connections_of(self, token: AccessToken, auth_event_id: str | None = None) -> list[dict]:
        return [
            c.to_dict()
            for c in self.connections.values()
            if c.client_id == token.client_id
            and c.user_id == token.user_id
            and (auth_event_id is None or c.auth_event_id == auth_event_id)
        ]

    def connected(self, token: AccessToken, tenant_id: str) -> bool:
        return self._connection_for(token.client_id, token.user_id, tenant_id) is not None

    def identity(self, authorization: str | None) -> str | None:
        """Who a request is, for the log: ``token:<grant id prefix>``, never the token."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if not token:
            return None
        if scheme.lower() == "basic":
            try:
                return "client:" + base64.b64decode(token).decode().partition(":")[0]
            except ValueError:
                return "invalid"
        record = self.access.get(token.strip())
        return f"token:{record.grant_id[:8]}" if record else "unknown"
