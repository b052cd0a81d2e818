"""Who is calling: an API key (HTTP Basic, the key as username, empty password) or a registered
bearer token, checked against the store's credentials (revoked, expired on the sandbox clock)."""

from __future__ import annotations

import base64
import binascii

from pleo_sandbox.entities import Credential
from pleo_sandbox.errors import ApiError
from pleo_sandbox.store import Store


def _lookup(store: Store, authorization: str | None) -> tuple[Credential | None, str]:
    if not authorization:
        return None, "Full authentication is required to access this resource."
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None, "Malformed Basic credentials."
        key, sep, password = decoded.partition(":")
        if not sep or not key or password:
            return None, "Use the API key as username and an empty password."
        cred = store.credential_for_secret(key)
        if cred is None or cred.kind != "api_key":
            return None, "Invalid API key."
    elif scheme.lower() == "bearer":
        cred = store.credential_for_secret(value)
        if cred is None or cred.kind != "token":
            return None, "Invalid access token."
    else:
        return None, "Unsupported authorization scheme."
    if cred.revoked:
        return None, "Credentials have been revoked."
    if cred.expires_at is not None and store.now() >= cred.expires_at:
        return None, "Access token expired."
    return cred, ""


def identity_for(store: Store, authorization: str | None) -> str | None:
    """Who a request claims to be, for the log: ``api_key:<id>``/``token:<id>``, never raw."""
    with store.lock:
        if not authorization:
            return None
        scheme, _, value = authorization.strip().partition(" ")
        secret = value.strip()
        if scheme.lower() == "basic":
            try:
                secret = base64.b64decode(secret, validate=True).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                return "invalid"
        cred = store.credential_for_secret(secret)
        return cred.identity if cred else "unknown"


def authenticate(store: Store, authorization: str | None) -> Credential:
    """The caller's credential; Pleo's 401 if there is none that works."""
    with store.lock:
        cred, reason = _lookup(store, authorization)
        if cred is None:
            raise ApiError(401, "UNAUTHORIZED", reason, {"WWW-Authenticate": 'Basic realm="pleo"'})
        return cred


def require_scope(cred: Credential, scope: str) -> None:
    if scope not in cred.scopes:
        raise ApiError(403, "FORBIDDEN", f"Insufficient scope: '{scope}' is required.")
