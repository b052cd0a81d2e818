"""Xero's OAuth 2.0 over real HTTP: consent page with tenant choice, code exchange with client
secret basic auth, 30-minute access tokens, rotating refresh tokens that lapse after 60 days
unused, reuse of a rotated refresh token, PKCE, revocation."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.fixtures.xero_sandbox import REDIRECT_URI
from tests.xero_sandbox.openapi import validate

SCOPE = "openid profile offline_access accounting.settings.read accounting.manualjournals"


def basic(client) -> dict:
    raw = f"{client.client_id}:{client.client_secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def consent(sandbox, *, tenants, decision="allow", **extra) -> dict:
    params = {
        "response_type": "code",
        "client_id": sandbox.client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "state": "st-1",
        **extra,
    }
    page = requests.get(f"{sandbox.url}/identity/connect/authorize", params=params, timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    offered = re.findall(r'name="tenant" value="([^"]+)"', page.text)
    assert set(offered) == {t.id for t in sandbox.state.tenants()}
    form = [(k, v) for k, v in params.items()] + [("decision", decision)]
    form += [("tenant", t) for t in tenants]
    answer = requests.post(
        f"{sandbox.url}/identity/connect/authorize", data=form, allow_redirects=False, timeout=5
    )
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(sandbox, form: dict, headers=None) -> requests.Response:
    return requests.post(
        f"{sandbox.url}/connect/token",
        data=form,
        headers=headers if headers is not None else basic(sandbox.client),
        timeout=5,
    )


def code_flow(sandbox, tenants) -> dict:
    query = consent(sandbox, tenants=tenants)
    answer = exchange(
        sandbox,
        {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT_URI},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    return answer.json()


def test_consent_page_tenant_choice_and_code_exchange(xero_sandbox):
    state = xero_sandbox.state
    second = state.tenants()[1]
    tokens = code_flow(xero_sandbox, [second.id])
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 1800
    # The identity spec's AccessToken (it does not list `scope`, which Xero's answers carry).
    validate({k: v for k, v in tokens.items() if k != "scope"}, "AccessToken", spec="identity")
    assert tokens["refresh_token"] and tokens["scope"] == SCOPE
    claims = json.loads(base64.urlsafe_b64decode(tokens["access_token"].split(".")[1] + "=="))
    event = claims["authentication_event_id"]
    connections = requests.get(
        f"{xero_sandbox.url}/connections",
        params={"authEventId": event},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=5,
    ).json()
    assert [c["tenantId"] for c in connections] == [second.id]
    org = requests.get(
        f"{xero_sandbox.api_url}/Organisation",
        headers=xero_sandbox.headers(tenant=second, token=tokens["access_token"]),
        timeout=5,
    )
    assert org.status_code == 200
    decision = state.requests(method="POST", path="/identity/connect/authorize")[-1]
    assert decision["responseHeaders"]["Location"].endswith("?<redacted>")  # the code
    log = state.requests(path="/connect/token")
    assert log and "access_token" not in json.dumps(log[-1]["body"])
    assert log[-1]["responseBody"]["access_token"] == "<redacted>"


def test_denied_unknown_client_bad_scope_and_reused_code(xero_sandbox):
    assert consent(xero_sandbox, tenants=[], decision="deny")["error"] == "access_denied"
    assert (
        consent(xero_sandbox, tenants=[xero_sandbox.tenant.id], scope="accounting.everything")[
            "error"
        ]
        == "invalid_scope"
    )
    page = requests.get(
        f"{xero_sandbox.url}/identity/connect/authorize",
        params={"client_id": "nope", "redirect_uri": REDIRECT_URI, "response_type": "code"},
        timeout=5,
        allow_redirects=False,
    )
    assert page.status_code == 400
    query = consent(xero_sandbox, tenants=[xero_sandbox.tenant.id])
    form = {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT_URI}
    assert exchange(xero_sandbox, form).status_code == 200
    reused = exchange(xero_sandbox, form)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    wrong_secret = exchange(
        xero_sandbox,
        {"grant_type": "refresh_token", "refresh_token": "x"},
        headers={"Authorization": "Basic " + base64.b64encode(b"a:b").decode()},
    )
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    other = exchange(xero_sandbox, {"grant_type": "password"})
    assert other.json()["error"] == "unsupported_grant_type"


def test_pkce_verifier_is_checked(xero_sandbox):
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    extra = {"code_challenge": challenge.decode(), "code_challenge_method": "S256"}
    for given, expected in (("wrong" * 10, 400), (verifier, 200)):
        query = consent(xero_sandbox, tenants=[xero_sandbox.tenant.id], **extra)
        form = {
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": given,
        }
        assert exchange(xero_sandbox, form).status_code == expected


def refresh(sandbox, token: str) -> requests.Response:
    return exchange(sandbox, {"grant_type": "refresh_token", "refresh_token": token})


def test_refresh_rotates_and_a_rotated_token_fails(xero_sandbox):
    first = xero_sandbox.tokens["refresh_token"]
    rotated = refresh(xero_sandbox, first)
    assert rotated.status_code == 200
    second = rotated.json()["refresh_token"]
    assert second != first
    assert xero_sandbox.state.refresh_token_status(first) == "rotated"
    reuse = refresh(xero_sandbox, first)
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert refresh(xero_sandbox, second).status_code == 200  # the family is not revoked


def test_grace_switch_returns_the_same_answer_for_a_rotated_token(xero_sandbox):
    state = xero_sandbox.state
    state.set_switches(refresh_token_grace_seconds=1800)
    first = xero_sandbox.tokens["refresh_token"]
    answer = refresh(xero_sandbox, first).json()
    assert refresh(xero_sandbox, first).json() == answer
    state.advance_clock(1801)
    assert refresh(xero_sandbox, first).json()["error"] == "invalid_grant"


def test_access_tokens_last_30_minutes_and_refresh_tokens_60_days_unused(xero_sandbox):
    state = xero_sandbox.state
    url = f"{xero_sandbox.api_url}/Organisation"
    state.advance_clock(1799)
    assert requests.get(url, headers=xero_sandbox.headers(), timeout=5).status_code == 200
    state.advance_clock(2)
    expired = requests.get(url, headers=xero_sandbox.headers(), timeout=5)
    assert expired.status_code == 401 and "TokenExpired" in expired.json()["Detail"]
    fresh = refresh(xero_sandbox, xero_sandbox.tokens["refresh_token"]).json()
    state.advance_clock(60 * 24 * 3600 - 5)
    still = refresh(xero_sandbox, fresh["refresh_token"])
    assert still.status_code == 200
    state.advance_clock(60 * 24 * 3600 + 1)
    lapsed = refresh(xero_sandbox, still.json()["refresh_token"])
    assert lapsed.status_code == 400 and lapsed.json()["error"] == "invalid_grant"


def test_revocation_removes_the_connections(xero_sandbox):
    answer = requests.post(
        f"{xero_sandbox.url}/connect/revocation",
        data={"token": xero_sandbox.tokens["refresh_token"]},
        headers=basic(xero_sandbox.client),
        timeout=5,
    )
    assert answer.status_code == 200
    assert xero_sandbox.state.connections() == []
    assert refresh(xero_sandbox, xero_sandbox.tokens["refresh_token"]).status_code == 400


@pytest.mark.parametrize("where", ["body", "basic"])
def test_client_credentials_in_the_body_or_basic(xero_sandbox, where):
    client = xero_sandbox.client
    form = {"grant_type": "refresh_token", "refresh_token": xero_sandbox.tokens["refresh_token"]}
    if where == "body":
        form |= {"client_id": client.client_id, "client_secret": client.client_secret}
    answer = exchange(xero_sandbox, form, headers={} if where == "body" else None)
    assert answer.status_code == 200
