"""Pleo's OAuth 2.0 server, as the reference describes it (section 2.3), on the sandbox server.

* ``GET /oauth/authorize``: an HTML consent page (client, company, scopes) with Approve and Deny
  buttons that POST back to ``/oauth/authorize``; the answer is a 302 to the registered
  ``redirect_uri`` (exact match) with ``code`` + ``state``, or ``error=access_denied`` + ``state``.
  An unknown client or a redirect URI that is not registered gets an error page, never a redirect
  (RFC 6749 §4.1.2.1); other mistakes are redirected as ``error=invalid_request`` (and friends).
* ``POST /oauth/token`` (form-encoded): ``authorization_code`` with PKCE (S256 only; the code is
  single-use and short-lived) and ``refresh_token`` with rotation. Client authentication with
  ``client_id``/``client_secret`` in the body or HTTP Basic (one method per request).
* Access tokens are registered bearer credentials of the sandbox (like ``add_token``), with the
  client's company/organisation and the granted scopes, expiring after the
  ``oauth_access_token_lifetime`` switch on the sandbox clock.
* Refresh tokens rotate: each one works once. Presenting a rotated (or expired) refresh token
  revokes the whole family: every refresh token and access token of that authorisation.
  Re-using an authorisation code revokes what was issued from it.
* Errors are OAuth 2.0 bodies ``{"error", "error_description"}``: ``invalid_request``,
  ``invalid_grant``, ``unsupported_grant_type``, ``invalid_scope`` (400) and ``invalid_client``
  (401 with ``WWW-Authenticate``).

Here: the protocol (authorize checks, the token endpoint's grant rules, client authentication) and
the HTTP handlers. The registry of clients, codes and token families is
:mod:`pleo_sandbox.oauth_store`; the HTML pages are :mod:`pleo_sandbox.oauth_pages`.

Tokens, codes, verifiers and client secrets never reach a log: the request log stores form
bodies and token responses with those fields redacted (``pleo_sandbox.requestlog``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from pleo_sandbox.errors import ApiError
from pleo_sandbox.messages import Request, Response
from pleo_sandbox.oauth_pages import AUTHORIZE_PARAMS, NO_STORE, consent_page, error_page
from pleo_sandbox.oauth_store import OAuthClient, OAuthStore
from pleo_sandbox.store import Store
from pleo_sandbox.vocabulary import TokenStatus

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
VERIFIER_RE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
CHALLENGE_RE = re.compile(r"[A-Za-z0-9\-_]{43}")


class OAuthApiError(ApiError):
    """An OAuth 2.0 error answer: ``{"error": code, "error_description": text}``."""

    def __init__(
        self, status: int, error: str, description: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status, error, description, {**NO_STORE, **(headers or {})})

    def body(self) -> dict:
        return {"error": self.type, "error_description": self.message}


def _invalid_request(text: str) -> OAuthApiError:
    return OAuthApiError(400, "invalid_request", text)


def _invalid_grant(text: str) -> OAuthApiError:
    return OAuthApiError(400, "invalid_grant", text)


def _invalid_client(text: str = "Client authentication failed.") -> OAuthApiError:
    return OAuthApiError(401, "invalid_client", text, {"WWW-Authenticate": 'Basic realm="pleo"'})


class _PageError(Exception):
    """An authorize request that must not be redirected (unknown client, bad redirect URI)."""


class _RedirectError(Exception):
    """An authorize request that is answered by redirecting an OAuth error to the client."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def s256(verifier: str) -> str:
    """The PKCE S256 code challenge of ``verifier`` (base64url of SHA-256, no padding)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def with_query(url: str, params: dict[str, str]) -> str:
    """``url`` with ``params`` appended to its query (existing parameters kept)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


class OAuthServer:
    """The OAuth endpoints and the consent step over the registry; all under the store's lock."""

    def __init__(self, store: Store, tokens: OAuthStore) -> None:
        self.store = store
        self.tokens = tokens

    # -- control -------------------------------------------------------------------------------
    def authorize(self, url: str | None = None, *, decision: str = "approve", **params) -> str:
        """Perform the consent step for a test: returns the redirect URL (``Location``)."""
        query: dict[str, str] = {}
        if url:
            query.update({k: v[0] for k, v in parse_qs(urlsplit(url).query).items()})
        query.update({k: str(v) for k, v in params.items() if v is not None})
        if decision not in ("approve", "deny"):
            raise ValueError("decision must be 'approve' or 'deny'")
        with self.store.lock:
            try:
                return self._decide(query, decision)
            except _PageError as exc:
                raise ValueError(str(exc))

    # -- HTTP: authorize ---------------------------------------------------------------------
    def _client_and_redirect(self, params: dict[str, str]) -> tuple[OAuthClient, str]:
        client_id = params.get("client_id") or ""
        client = self.tokens.client(client_id)
        if client is None:
            raise _PageError("Unknown client_id." if client_id else "client_id is required.")
        redirect_uri = params.get("redirect_uri") or ""
        if not redirect_uri:
            raise _PageError("redirect_uri is required.")
        if redirect_uri not in client.redirect_uris:
            raise _PageError("redirect_uri does not match a URI registered for this client.")
        return client, redirect_uri

    def _check_authorize(self, client: OAuthClient, params: dict[str, str]) -> frozenset[str]:
        """Validate the rest of an authorize request; returns the requested scopes."""
        if params.get("response_type") != "code":
            raise _RedirectError("unsupported_response_type", "response_type must be 'code'.")
        challenge = params.get("code_challenge") or ""
        if not challenge:
            raise _RedirectError("invalid_request", "code_challenge is required (PKCE).")
        if params.get("code_challenge_method") != "S256":
            raise _RedirectError("invalid_request", "code_challenge_method must be 'S256'.")
        if not CHALLENGE_RE.fullmatch(challenge):
            raise _RedirectError("invalid_request", "code_challenge is not a S256 challenge.")
        requested = (params.get("scope") or "").split()
        scopes = frozenset(requested) if requested else client.scopes
        if not scopes <= client.scopes:
            extra = " ".join(sorted(scopes - client.scopes))
            raise _RedirectError("invalid_scope", f"Scope not allowed for this client: {extra}")
        return scopes

    def _error_redirect(self, redirect_uri: str, error: str, text: str, state: str | None) -> str:
        params = {"error": error, "error_description": text}
        if state is not None:
            params["state"] = state
        return with_query(redirect_uri, params)

    def _decide(self, params: dict[str, str], decision: str) -> str:
        client, redirect_uri = self._client_and_redirect(params)
        state = params.get("state")
        try:
            scopes = self._check_authorize(client, params)
        except _RedirectError as exc:
            return self._error_redirect(redirect_uri, exc.error, exc.description, state)
        if decision != "approve":
            return self._error_redirect(
                redirect_uri, "access_denied", "The user denied the request.", state
            )
        code = self.tokens.add_code(
            client,
            redirect_uri=redirect_uri,
            scopes=scopes,
            challenge=params["code_challenge"],
        )
        answer = {"code": code.code}
        if state is not None:
            answer["state"] = state
        return with_query(redirect_uri, answer)

    def http_authorize_page(self, req: Request) -> Response:
        params = {k: v[0] for k, v in req.query.items() if v}
        with self.store.lock:
            try:
                client, redirect_uri = self._client_and_redirect(params)
            except _PageError as exc:
                return error_page(str(exc))
            try:
                scopes = self._check_authorize(client, params)
            except _RedirectError as exc:
                location = self._error_redirect(
                    redirect_uri, exc.error, exc.description, params.get("state")
                )
                return Response(302, None, {"Location": location})
            companies = [
                self.store.companies[c].name
                for c in client.company_ids
                if c in self.store.companies
            ]
            org = self.store.organisation(client.organisation_id)
        return consent_page(client, scopes, params, companies, org.name if org else None)

    def http_authorize_decision(self, req: Request) -> Response:
        form = _form(req, strict=False)
        decision = form.pop("decision", "")
        if decision not in ("approve", "deny"):
            return error_page("decision must be 'approve' or 'deny'.")
        params = {k: v for k, v in form.items() if k in AUTHORIZE_PARAMS}
        with self.store.lock:
            try:
                location = self._decide(params, decision)
            except _PageError as exc:
                return error_page(str(exc))
        return Response(302, None, {"Location": location, **NO_STORE})

    # -- HTTP: token -------------------------------------------------------------------------
    def http_token(self, req: Request) -> Response:
        form = _form(req, strict=True)
        with self.store.lock:
            client = self._authenticate_client(req, form)
            grant_type = form.get("grant_type")
            if not grant_type:
                raise _invalid_request("grant_type is required.")
            if grant_type == "authorization_code":
                body = self._grant_code(client, form)
            elif grant_type == "refresh_token":
                body = self._grant_refresh(client, form)
            else:
                raise OAuthApiError(
                    400, "unsupported_grant_type", f"Grant type '{grant_type}' is not supported."
                )
        return Response(200, body, dict(NO_STORE))

    def identity(self, req: Request) -> str | None:
        """What the request log shows for a token request: ``oauth_client:<client id>``."""
        client_id = _basic_client(req.headers.get("authorization"))[0]
        if client_id is None:
            try:
                client_id = _form(req, strict=False).get("client_id")
            except ApiError:
                client_id = None
        return f"oauth_client:{client_id}" if client_id else None

    def _authenticate_client(self, req: Request, form: dict[str, str]) -> OAuthClient:
        authorization = req.headers.get("authorization")
        basic_id, basic_secret = _basic_client(authorization)
        if authorization and basic_id is None:
            raise _invalid_client("Unsupported or malformed client authentication.")
        if basic_id is not None:
            if "client_secret" in form:
                raise _invalid_request("Use one client authentication method, not two.")
            if form.get("client_id") not in (None, basic_id):
                raise _invalid_request("client_id does not match the authenticated client.")
            client_id, secret = basic_id, basic_secret or ""
        else:
            client_id, secret = form.get("client_id"), form.get("client_secret")
            if not client_id:
                raise _invalid_client("Client authentication is required.")
            if secret is None:
                raise _invalid_client("client_secret is required.")
        client = self.tokens.client(client_id)
        if client is None or not hmac.compare_digest(
            client.client_secret.encode(), secret.encode()
        ):
            raise _invalid_client()
        return client

    def _grant_code(self, client: OAuthClient, form: dict[str, str]) -> dict:
        raw = form.get("code")
        if not raw:
            raise _invalid_request("code is required.")
        redirect_uri = form.get("redirect_uri")
        if not redirect_uri:
            raise _invalid_request("redirect_uri is required.")
        verifier = form.get("code_verifier")
        if not verifier:
            raise _invalid_request("code_verifier is required (PKCE).")
        if not VERIFIER_RE.fullmatch(verifier):
            raise _invalid_request("code_verifier must be 43-128 characters of [A-Za-z0-9-._~].")
        code = self.tokens.code(raw)
        if code is None or code.client_id != client.client_id:
            raise _invalid_grant("Invalid authorization code.")
        if code.used:
            # RFC 6749 §4.1.2: a code used twice revokes what was issued from it.
            grant = self.tokens.grant(code.grant_id or "")
            if grant is not None:
                self.tokens.revoke(grant, "authorization code used twice")
            raise _invalid_grant("Authorization code was already used.")
        if self.store.now() >= code.expires_at:
            raise _invalid_grant("Authorization code expired.")
        if redirect_uri != code.redirect_uri:
            raise _invalid_grant("redirect_uri does not match the authorization request.")
        if not hmac.compare_digest(s256(verifier), code.code_challenge):
            raise _invalid_grant("code_verifier does not match the code_challenge.")
        code.used = True
        grant = self.tokens.new_grant(client, code.scopes, via="authorization_code")
        code.grant_id = grant.id
        return self.tokens.issue(client, grant)

    def _grant_refresh(self, client: OAuthClient, form: dict[str, str]) -> dict:
        raw = form.get("refresh_token")
        if not raw:
            raise _invalid_request("refresh_token is required.")
        rt = self.tokens.refresh_token(raw)
        grant = self.tokens.grant(rt.grant_id) if rt else None
        if rt is None or grant is None or grant.client_id != client.client_id:
            raise _invalid_grant("Invalid refresh token.")
        if grant.revoked_at is not None or rt.status == TokenStatus.REVOKED:
            raise _invalid_grant("Refresh token was revoked.")
        if rt.status == TokenStatus.ROTATED:
            self.tokens.revoke(grant, "a rotated refresh token was presented again")
            raise _invalid_grant(
                "Refresh token was already used: every token of this authorisation is revoked."
            )
        if self.store.now() >= rt.expires_at:
            self.tokens.revoke(grant, "an expired refresh token was presented")
            raise _invalid_grant(
                "Refresh token expired: every token of this authorisation is revoked."
            )
        requested = (form.get("scope") or "").split()
        if requested and not frozenset(requested) <= grant.scopes:
            raise OAuthApiError(400, "invalid_scope", "Scope exceeds the original grant.")
        rt.status = TokenStatus.ROTATED
        return self.tokens.issue(client, grant)


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def _form(req: Request, *, strict: bool) -> dict[str, str]:
    """The form-encoded body. ``strict`` (token endpoint): content type checked, no repeats."""
    media = req.headers.get("content-type", "").split(";")[0].strip().lower()
    if strict and media != FORM_CONTENT_TYPE:
        raise _invalid_request(f"Content-Type must be {FORM_CONTENT_TYPE}.")
    try:
        text = req.raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid_request("The body is not UTF-8.")
    pairs = parse_qsl(text, keep_blank_values=True)
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out and strict:
            raise _invalid_request(f"Parameter '{key}' is repeated.")
        out[key] = value
    return out


def _basic_client(authorization: str | None) -> tuple[str | None, str | None]:
    """``(client_id, client_secret)`` from ``Authorization: Basic`` (form-urlencoded parts)."""
    if not authorization:
        return None, None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id:
        return None, None
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))
