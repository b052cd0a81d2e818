"""The sandbox OAuth server's registry: clients, authorization codes and token families.

Control (tests, ``/_sandbox/oauth-…``): register a client, issue a token family without the
authorize round trip, list families, look up a refresh token's status, revoke a family.

Token families (:class:`Grant`): one per authorisation. :meth:`OAuthStore.issue` adds an access
token (a bearer credential in the sandbox store, expiring after the
``oauth_access_token_lifetime`` switch) and a refresh token (``oauth_refresh_token_lifetime``);
:meth:`OAuthStore.revoke` revokes every token of the family. The protocol rules (PKCE, rotation,
reuse detection) are in :mod:`pleo_sandbox.oauth`; everything here runs under the store's lock.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from pleo_sandbox.entities import scope_set
from pleo_sandbox.rendering import camel_fields
from pleo_sandbox.store import Store
from pleo_sandbox.vocabulary import TokenStatus


@dataclass
class OAuthClient:
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...]
    company_ids: tuple[str, ...]
    organisation_id: str | None
    scopes: frozenset[str]
    name: str

    def to_dict(self) -> dict:
        return camel_fields(
            self,
            "client_id",
            "client_secret",
            "name",
            "redirect_uris",
            "company_ids",
            "organisation_id",
            "scopes",
        )


@dataclass
class AuthorizationCode:
    code: str = field(repr=False)
    client_id: str
    redirect_uri: str
    scopes: frozenset[str]
    code_challenge: str
    expires_at: datetime
    used: bool = False
    grant_id: str | None = None


@dataclass
class RefreshToken:
    id: str
    token: str = field(repr=False)
    grant_id: str
    issued_at: datetime
    expires_at: datetime
    status: TokenStatus = TokenStatus.ACTIVE

    def to_dict(self) -> dict:
        return camel_fields(self, "id", "status", "issued_at", "expires_at")


@dataclass
class Grant:
    """One authorisation (a token family): every refresh and access token issued from it."""

    id: str
    client_id: str
    scopes: frozenset[str]
    created_at: datetime
    via: str  # authorization_code | control
    refresh_tokens: list[RefreshToken] = field(default_factory=list)
    access_token_ids: list[str] = field(default_factory=list)
    revoked_at: datetime | None = None
    revoked_reason: str | None = None

    def to_dict(self) -> dict:
        return (
            camel_fields(self, "id", "client_id", "scopes", "created_at", "via")
            | {"revoked": self.revoked_at is not None}
            | camel_fields(self, "revoked_at", "revoked_reason")
            | {"refreshTokens": [t.to_dict() for t in self.refresh_tokens]}
            | camel_fields(self, "access_token_ids")
        )


class OAuthStore:
    """OAuth clients, codes and token families over the sandbox store (and its lock)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reset()

    def reset(self) -> None:
        with self.store.lock:
            self._clients: dict[str, OAuthClient] = {}
            self._codes: dict[str, AuthorizationCode] = {}
            self._grants: dict[str, Grant] = {}
            self._refresh_tokens: dict[str, RefreshToken] = {}

    # -- control ---------------------------------------------------------------------------------
    def add_client(
        self,
        client_id: str | None = None,
        *,
        client_secret: str | None = None,
        redirect_uris: Iterable[str] | str = (),
        company_id: str | None = None,
        company_ids: Iterable[str] | None = None,
        organisation_id: str | None = None,
        scopes: Iterable[str] | str | None = None,
        name: str | None = None,
    ) -> OAuthClient:
        """Register a client (``.client_id``, ``.client_secret``, ``.redirect_uris``)."""
        with self.store.lock:
            if isinstance(redirect_uris, str):
                redirect_uris = [redirect_uris]
            uris = tuple(str(u) for u in redirect_uris or ())
            if not uris:
                raise ValueError("an OAuth client needs at least one redirect URI")
            for uri in uris:
                parts = urlsplit(uri)
                if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
                    raise ValueError(f"redirect URI {uri!r} must be an absolute http(s) URL")
            companies = self.store.owned_companies(
                company_id, company_ids, organisation_id, owner="an OAuth client"
            )
            if isinstance(scopes, str):
                scopes = scopes.split()
            checked_scopes = scope_set(scopes)
            client_id = client_id or f"sbx_client_{secrets.token_hex(8)}"
            if client_id in self._clients:
                raise ValueError(f"OAuth client {client_id} exists")
            client = OAuthClient(
                client_id=client_id,
                client_secret=client_secret or f"sbx_ocs_{secrets.token_urlsafe(24)}",
                redirect_uris=uris,
                company_ids=companies,
                organisation_id=organisation_id,
                scopes=checked_scopes,
                name=name or f"Sandbox OAuth client {len(self._clients) + 1}",
            )
            self._clients[client_id] = client
            return client

    def clients(self) -> list[OAuthClient]:
        with self.store.lock:
            return list(self._clients.values())

    def grants(self) -> list[dict]:
        """Every authorisation (token family) with its refresh tokens' statuses (no secrets)."""
        with self.store.lock:
            return [g.to_dict() for g in self._grants.values()]

    def refresh_token_status(self, refresh_token: str) -> TokenStatus | None:
        """``active``, ``rotated``, ``revoked`` or None (unknown)."""
        with self.store.lock:
            rt = self._refresh_tokens.get(refresh_token)
            return rt.status if rt else None

    def revoke_grant(self, grant_id: str, reason: str = "revoked by the sandbox control") -> dict:
        with self.store.lock:
            grant = self._grants[grant_id]
            self.revoke(grant, reason)
            return grant.to_dict()

    def issue_tokens(self, client_id: str, *, scopes: Iterable[str] | None = None) -> dict:
        """Tokens for ``client_id`` as if its user had just approved (no authorize round trip):
        ``{access_token, refresh_token, expires_in, token_type, scope, grantId}``."""
        with self.store.lock:
            client = self._clients.get(client_id)
            if client is None:
                raise ValueError(f"unknown OAuth client {client_id}")
            if isinstance(scopes, str):
                scopes = scopes.split()
            requested = frozenset(scopes) if scopes is not None else client.scopes
            if not requested <= client.scopes:
                raise ValueError("scopes must be a subset of the client's scopes")
            grant = self.new_grant(client, requested, via="control")
            body = self.issue(client, grant)
            return {**body, "grantId": grant.id}

    # -- lookups (the protocol's) ----------------------------------------------------------------
    def client(self, client_id: str | None) -> OAuthClient | None:
        return self._clients.get(client_id or "")

    def code(self, code: str) -> AuthorizationCode | None:
        return self._codes.get(code)

    def grant(self, grant_id: str | None) -> Grant | None:
        return self._grants.get(grant_id or "")

    def refresh_token(self, token: str) -> RefreshToken | None:
        return self._refresh_tokens.get(token)

    # -- changes ---------------------------------------------------------------------------------
    def add_code(
        self, client: OAuthClient, *, redirect_uri: str, scopes: frozenset[str], challenge: str
    ) -> AuthorizationCode:
        """A fresh authorization code, valid for the ``oauth_code_lifetime`` switch."""
        lifetime = int(self.store.switch("oauth_code_lifetime"))
        code = AuthorizationCode(
            code=f"sbx_code_{secrets.token_urlsafe(24)}",
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            scopes=scopes,
            code_challenge=challenge,
            expires_at=self.store.now() + timedelta(seconds=lifetime),
        )
        self._codes[code.code] = code
        return code

    def new_grant(self, client: OAuthClient, scopes: frozenset[str], *, via: str) -> Grant:
        grant = Grant(
            id=f"grt_{secrets.token_hex(6)}",
            client_id=client.client_id,
            scopes=scopes,
            created_at=self.store.now(),
            via=via,
        )
        self._grants[grant.id] = grant
        return grant

    def issue(self, client: OAuthClient, grant: Grant) -> dict:
        """A new access token and refresh token in ``grant``: the token endpoint's answer."""
        lifetime = int(self.store.switch("oauth_access_token_lifetime"))
        access = self.store.add_credential(
            "token",
            secret=f"sbx_oat_{secrets.token_urlsafe(32)}",
            company_ids=client.company_ids,
            organisation_id=client.organisation_id,
            scopes=grant.scopes,
            label=f"oauth:{client.client_id}:{grant.id}",
            expires_in=lifetime,
        )
        grant.access_token_ids.append(access.id)
        now = self.store.now()
        refresh_lifetime = int(self.store.switch("oauth_refresh_token_lifetime"))
        rt = RefreshToken(
            id=f"rt_{secrets.token_hex(6)}",
            token=f"sbx_ort_{secrets.token_urlsafe(32)}",
            grant_id=grant.id,
            issued_at=now,
            expires_at=now + timedelta(seconds=refresh_lifetime),
        )
        grant.refresh_tokens.append(rt)
        self._refresh_tokens[rt.token] = rt
        return {
            "access_token": access.secret,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "refresh_token": rt.token,
            "scope": " ".join(sorted(grant.scopes)),
        }

    def revoke(self, grant: Grant, reason: str) -> None:
        """Revoke the family: every refresh token and access token issued in it."""
        if grant.revoked_at is None:
            grant.revoked_at = self.store.now()
            grant.revoked_reason = reason
        for rt in grant.refresh_tokens:
            rt.status = TokenStatus.REVOKED
        self.store.revoke_credentials(grant.access_token_ids)
