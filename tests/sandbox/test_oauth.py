"""The sandbox's OAuth 2.0 server: authorize (consent page), code + PKCE, rotating refresh tokens,
family revocation on reuse, OAuth error bodies, faults and a request log without secrets."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from tests import secrets_registry

REDIRECT = "http://127.0.0.1:9/oauth/pleo/callback/"
SCOPES = "export-jobs:read export-jobs:write export-items:read"
TIMEOUT = 5


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


class OAuth:
    """One sandbox with a company, a registered client and helpers for the three endpoints."""

    def __init__(self, server):
        self.url = server.url
        self.state = server.state
        self.company = self.state.add_company("OAuth ApS")
        self.client = self.state.add_oauth_client(
            redirect_uris=[REDIRECT], company_id=self.company.id, name="Bridge"
        )
        secrets_registry.register(self.client.client_secret)

    def authorize_params(self, verifier: str, **overrides) -> dict[str, str]:
        params = {
            "client_id": self.client.client_id,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": SCOPES,
            "state": "st-123",
            "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256",
        }
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    def authorize_page(self, params: dict) -> requests.Response:
        """The authorize page a browser is sent to (a redirect is not followed)."""
        return requests.get(
            f"{self.url}/oauth/authorize", params=params, allow_redirects=False, timeout=TIMEOUT
        )

    def decide(self, params: dict, decision: str) -> requests.Response:
        """The page's form posted back with ``decision``, as a browser would."""
        return requests.post(
            f"{self.url}/oauth/authorize",
            data={**params, "decision": decision},
            allow_redirects=False,
            timeout=TIMEOUT,
        )

    def new_code(self, verifier: str) -> str:
        location = self.state.oauth_authorize(**self.authorize_params(verifier))
        return secrets_registry.register(_query(location)["code"])

    def token(self, data: dict, *, basic: bool = False, **kw) -> requests.Response:
        data = dict(data)
        auth = None
        if basic:
            auth = (self.client.client_id, self.client.client_secret)
        else:
            data.setdefault("client_id", self.client.client_id)
            data.setdefault("client_secret", self.client.client_secret)
        return requests.post(f"{self.url}/oauth/token", data=data, auth=auth, timeout=TIMEOUT, **kw)

    def exchange(self, code: str, verifier: str, **kw) -> requests.Response:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        }
        return self.token(data, **kw)

    def refresh(self, refresh_token: str, **kw) -> requests.Response:
        return self.token({"grant_type": "refresh_token", "refresh_token": refresh_token}, **kw)

    def api(self, access_token: str) -> requests.Response:
        return requests.get(
            f"{self.url}/v3/export-jobs",
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=TIMEOUT,
        )


def _settled(state, method=None, path=None) -> list[dict]:
    """The request log once every request is finished (a client may read an answer before the
    sandbox's handler has logged it)."""
    state.request_log.wait_for(lambda log: all(e["complete"] for e in log), timeout=5)
    return state.requests(method, path)


def _tokens(body: dict) -> dict:
    secrets_registry.register(body.get("access_token", ""))
    secrets_registry.register(body.get("refresh_token", ""))
    return body


@pytest.fixture
def oauth(pleo_sandbox):
    return OAuth(pleo_sandbox)


def _verifier() -> str:
    return secrets_registry.register(secrets.token_urlsafe(48))


# -- authorize -------------------------------------------------------------------------------------


def test_consent_page_shows_client_and_scopes_and_approve_redirects_with_code(oauth):
    verifier = _verifier()
    params = oauth.authorize_params(verifier)
    page = requests.get(f"{oauth.url}/oauth/authorize", params=params, timeout=TIMEOUT)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    text = page.text
    assert "Bridge" in text and oauth.client.client_id in text and "OAuth ApS" in text
    for scope in SCOPES.split():
        assert scope in text
    assert "Approve" in text and "Deny" in text
    # The form posts the request back with a decision, like a browser would.
    hidden = dict(re.findall(r"name='([^']+)' value='([^']*)'", text))
    assert hidden["state"] == "st-123" and hidden["redirect_uri"] == REDIRECT
    answer = oauth.decide(hidden, "approve")
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    query = _query(location)
    assert query["state"] == "st-123"
    code = secrets_registry.register(query["code"])
    body = _tokens(oauth.exchange(code, verifier).json())
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert set(body["scope"].split()) == set(SCOPES.split())
    assert oauth.api(body["access_token"]).status_code == 200


def test_deny_redirects_with_access_denied_and_state(oauth):
    params = oauth.authorize_params(_verifier())
    answer = oauth.decide(params, "deny")
    assert answer.status_code == 302
    query = _query(answer.headers["Location"])
    assert query["error"] == "access_denied" and query["state"] == "st-123"
    assert "code" not in query
    assert _query(oauth.state.oauth_authorize(**params, decision="deny"))["error"] == (
        "access_denied"
    )


@pytest.mark.parametrize(
    "override, message",
    [
        ({"client_id": "nobody"}, "Unknown client_id"),
        ({"redirect_uri": REDIRECT + "x"}, "redirect_uri does not match"),
        ({"redirect_uri": None}, "redirect_uri is required"),
    ],
)
def test_unknown_client_or_redirect_uri_is_an_error_page_never_a_redirect(oauth, override, message):
    params = oauth.authorize_params(_verifier(), **override)
    page = oauth.authorize_page(params)
    assert page.status_code == 400 and message in page.text
    decision = oauth.decide(params, "approve")
    assert decision.status_code == 400 and "Location" not in decision.headers


@pytest.mark.parametrize(
    "override, error",
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "export-jobs:read admin:all"}, "invalid_scope"),
    ],
)
def test_bad_authorize_requests_redirect_an_oauth_error(oauth, override, error):
    params = oauth.authorize_params(_verifier(), **override)
    page = oauth.authorize_page(params)
    assert page.status_code == 302
    query = _query(page.headers["Location"])
    assert query["error"] == error and query["state"] == "st-123" and "code" not in query


def test_redirect_uri_with_a_query_keeps_it(pleo_sandbox):
    state = pleo_sandbox.state
    company = state.add_company()
    client = state.add_oauth_client(
        redirect_uris=["https://example.test/cb?tenant=7"], company_id=company.id
    )
    location = state.oauth_authorize(
        client_id=client.client_id,
        redirect_uri="https://example.test/cb?tenant=7",
        response_type="code",
        code_challenge=_challenge("v" * 43),
        code_challenge_method="S256",
    )
    query = _query(location)
    assert query["tenant"] == "7" and query["code"] and "state" not in query
    secrets_registry.register(query["code"])


# -- token: authorization_code ---------------------------------------------------------------------


def test_code_exchange_checks_verifier_and_codes_are_single_use(oauth):
    verifier = _verifier()
    code = oauth.new_code(verifier)
    wrong = oauth.exchange(code, _verifier())
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert "code_verifier" in wrong.json()["error_description"]

    # A failed verifier does not burn the code; the right one works once.
    first = oauth.exchange(code, verifier)
    assert first.status_code == 200, first.text
    tokens = _tokens(first.json())
    assert first.headers["Cache-Control"] == "no-store"
    assert oauth.api(tokens["access_token"]).status_code == 200

    again = oauth.exchange(code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # Re-using a code revokes what was issued from it.
    assert oauth.api(tokens["access_token"]).status_code == 401
    assert oauth.state.oauth_refresh_token_status(tokens["refresh_token"]) == "revoked"


def test_code_expires_on_the_sandbox_clock(oauth):
    verifier = _verifier()
    code = oauth.new_code(verifier)
    oauth.state.advance_clock(61)
    answer = oauth.exchange(code, verifier)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    assert "expired" in answer.json()["error_description"]


@pytest.mark.parametrize(
    "change, error",
    [
        ({"redirect_uri": REDIRECT + "other"}, "invalid_grant"),
        ({"code_verifier": "x" * 20}, "invalid_request"),
        ({"code_verifier": None}, "invalid_request"),
        ({"code": None}, "invalid_request"),
        ({"code": "sbx_code_unknown"}, "invalid_grant"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": None}, "invalid_request"),
    ],
)
def test_code_exchange_errors(oauth, change, error):
    verifier = _verifier()
    data = {
        "grant_type": "authorization_code",
        "code": oauth.new_code(verifier),
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    data.update(change)
    answer = oauth.token({k: v for k, v in data.items() if v is not None})
    assert answer.status_code == 400
    body = answer.json()
    assert set(body) == {"error", "error_description"} and body["error"] == error


def test_client_authentication(oauth):
    verifier = _verifier()
    code = oauth.new_code(verifier)
    base = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    wrong = oauth.token({**base, "client_secret": "wrong-secret"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert "WWW-Authenticate" in wrong.headers
    unknown = oauth.token({**base, "client_id": "nobody"})
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    none = requests.post(f"{oauth.url}/oauth/token", data=base, timeout=TIMEOUT)
    assert none.status_code == 401 and none.json()["error"] == "invalid_client"
    both = requests.post(
        f"{oauth.url}/oauth/token",
        data={**base, "client_secret": oauth.client.client_secret},
        auth=(oauth.client.client_id, oauth.client.client_secret),
        timeout=TIMEOUT,
    )
    assert both.status_code == 400 and both.json()["error"] == "invalid_request"
    as_json = requests.post(
        f"{oauth.url}/oauth/token",
        json={**base, "client_id": oauth.client.client_id},
        timeout=TIMEOUT,
    )
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
    # HTTP Basic works, and the code was not burnt by the failures above.
    ok = oauth.exchange(code, verifier, basic=True)
    assert ok.status_code == 200, ok.text
    _tokens(ok.json())


# -- token: refresh_token --------------------------------------------------------------------------


def test_refresh_rotates_and_reuse_revokes_the_whole_family(oauth):
    first = _tokens(oauth.state.oauth_issue_tokens(oauth.client.client_id))
    second = oauth.refresh(first["refresh_token"])
    assert second.status_code == 200, second.text
    second = _tokens(second.json())
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert oauth.state.oauth_refresh_token_status(first["refresh_token"]) == "rotated"
    third = _tokens(oauth.refresh(second["refresh_token"], basic=True).json())
    assert oauth.api(third["access_token"]).status_code == 200

    reuse = oauth.refresh(first["refresh_token"])
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert "revoked" in reuse.json()["error_description"]
    for token in (first, second, third):
        assert oauth.api(token["access_token"]).status_code == 401
    assert oauth.refresh(third["refresh_token"]).json()["error"] == "invalid_grant"
    (grant,) = oauth.state.oauth_grants()
    assert grant["revoked"] and "rotated refresh token" in grant["revokedReason"]
    assert {t["status"] for t in grant["refreshTokens"]} == {"revoked"}


def test_other_families_survive_a_revocation(oauth):
    one = _tokens(oauth.state.oauth_issue_tokens(oauth.client.client_id))
    two = _tokens(oauth.state.oauth_issue_tokens(oauth.client.client_id))
    _tokens(oauth.refresh(one["refresh_token"]).json())
    oauth.refresh(one["refresh_token"])  # reuse: family one revoked
    assert oauth.api(two["access_token"]).status_code == 200
    assert oauth.refresh(two["refresh_token"]).status_code == 200


def test_access_tokens_expire_after_the_switch_and_refresh_tokens_after_theirs(oauth):
    oauth.state.set_switches(oauth_access_token_lifetime=120)
    tokens = _tokens(oauth.state.oauth_issue_tokens(oauth.client.client_id))
    assert tokens["expires_in"] == 120
    assert oauth.api(tokens["access_token"]).status_code == 200
    oauth.state.advance_clock(121)
    expired = oauth.api(tokens["access_token"])
    assert expired.status_code == 401 and "expired" in expired.json()["message"]
    fresh = _tokens(oauth.refresh(tokens["refresh_token"]).json())
    assert oauth.api(fresh["access_token"]).status_code == 200

    oauth.state.set_switches(oauth_refresh_token_lifetime=300)
    short = _tokens(oauth.refresh(fresh["refresh_token"]).json())
    oauth.state.advance_clock(301)
    answer = oauth.refresh(short["refresh_token"])
    assert answer.json()["error"] == "invalid_grant" and "expired" in answer.text


def test_refresh_token_of_another_client_or_unknown_is_invalid_grant(oauth, pleo_sandbox):
    other = pleo_sandbox.state.add_oauth_client(
        redirect_uris=[REDIRECT], company_id=oauth.company.id
    )
    secrets_registry.register(other.client_secret)
    tokens = _tokens(oauth.state.oauth_issue_tokens(other.client_id))
    answer = oauth.refresh(tokens["refresh_token"])
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    assert oauth.refresh("sbx_ort_nope").json()["error"] == "invalid_grant"
    # Not a reuse: the other client's family is intact.
    assert oauth.state.oauth_refresh_token_status(tokens["refresh_token"]) == "active"
    assert oauth.refresh("").json()["error"] == "invalid_request"
    scope = oauth.token(
        {"grant_type": "refresh_token", "refresh_token": "sbx_ort_nope", "scope": "x"}
    )
    assert scope.json()["error"] == "invalid_grant"


def test_tokens_carry_the_clients_company_and_scopes(pleo_sandbox):
    state = pleo_sandbox.state
    mine, theirs = state.add_company("Mine"), state.add_company("Theirs")
    client = state.add_oauth_client(
        redirect_uris=[REDIRECT], company_id=mine.id, scopes=["export-jobs:read"]
    )
    secrets_registry.register(client.client_secret)
    state.create_job(mine.id, items=1, notify=False)
    state.create_job(theirs.id, items=1, notify=False)
    tokens = _tokens(state.oauth_issue_tokens(client.client_id))
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    listed = requests.get(f"{pleo_sandbox.url}/v3/export-jobs", headers=headers, timeout=TIMEOUT)
    assert [j["companyId"] for j in listed.json()["data"]] == [mine.id]
    items = requests.get(f"{pleo_sandbox.url}/v3/export-items", headers=headers, timeout=TIMEOUT)
    assert items.status_code == 403
    (log_entry,) = [e for e in _settled(state) if e["path"] == "/v3/export-items"]
    assert log_entry["identity"].startswith("token:")


# -- faults, request log, control API --------------------------------------------------------------


def test_apply_then_drop_on_the_token_endpoint_rotates_without_an_answer(oauth):
    tokens = _tokens(oauth.state.oauth_issue_tokens(oauth.client.client_id))
    oauth.state.add_fault(
        "apply_then_drop", "POST", "/oauth/token", body_match={"grant_type": "refresh_token"}
    )
    with pytest.raises(requests.ConnectionError):
        oauth.refresh(tokens["refresh_token"])
    assert oauth.state.oauth_refresh_token_status(tokens["refresh_token"]) == "rotated"
    (entry,) = _settled(oauth.state, "POST", "/oauth/token")
    assert entry["outcome"] == "dropped" and entry["fault"] == "apply_then_drop"
    # Presenting it again is a reuse: the family (including the unseen new tokens) is revoked.
    assert oauth.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    (grant,) = oauth.state.oauth_grants()
    assert grant["revoked"] and len(grant["refreshTokens"]) == 2


def test_status_fault_on_the_token_endpoint(oauth):
    tokens = _tokens(oauth.state.oauth_issue_tokens(oauth.client.client_id))
    oauth.state.add_fault("status", "POST", "/oauth/token", status=503)
    assert oauth.refresh(tokens["refresh_token"]).status_code == 503
    assert oauth.state.oauth_refresh_token_status(tokens["refresh_token"]) == "active"


def test_request_log_and_python_logs_never_show_tokens_or_secrets(oauth, caplog):
    verifier = _verifier()
    code = oauth.new_code(verifier)
    tokens = _tokens(oauth.exchange(code, verifier).json())
    _tokens(oauth.refresh(tokens["refresh_token"], basic=True).json())
    log = _settled(oauth.state, "POST", "/oauth/token")
    assert len(log) == 2
    exchange, refresh = log
    assert exchange["body"]["grant_type"] == "authorization_code"
    assert exchange["body"]["client_id"] == oauth.client.client_id
    for field in ("code", "code_verifier", "client_secret"):
        assert exchange["body"][field] == "<redacted>"
    assert refresh["body"]["refresh_token"] == "<redacted>"
    assert refresh["headers"]["Authorization"] == "<redacted>"
    assert exchange["identity"] == refresh["identity"] == f"oauth_client:{oauth.client.client_id}"
    assert exchange["responseBody"]["access_token"] == "<redacted>"
    assert exchange["responseBody"]["refresh_token"] == "<redacted>"
    assert exchange["responseBody"]["expires_in"] == 3600
    text = repr(_settled(oauth.state)) + caplog.text
    for secret in secrets_registry.current():
        assert secret not in text
    assert oauth.client.client_secret not in repr(oauth.client)


def test_control_api_over_http(pleo_sandbox):
    url = pleo_sandbox.url
    company = requests.post(f"{url}/_sandbox/companies", json={}, timeout=TIMEOUT).json()["data"]
    created = requests.post(
        f"{url}/_sandbox/oauth-clients",
        json={"clientId": "bridge-1", "redirectUris": [REDIRECT], "companyId": company["id"]},
        timeout=TIMEOUT,
    )
    assert created.status_code == 201, created.text
    client = created.json()["data"]
    secrets_registry.register(client["clientSecret"])
    assert client["clientId"] == "bridge-1" and client["scopes"] == sorted(SCOPES.split())
    listed = requests.get(f"{url}/_sandbox/oauth-clients", timeout=TIMEOUT).json()["data"]
    assert [c["clientId"] for c in listed] == ["bridge-1"]

    verifier = _verifier()
    authorize_url = f"{url}/oauth/authorize?" + urlencode(
        {
            "client_id": "bridge-1",
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "state": "abc",
            "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    approved = requests.post(
        f"{url}/_sandbox/oauth/authorize", json={"url": authorize_url}, timeout=TIMEOUT
    ).json()["location"]
    assert _query(approved)["state"] == "abc"
    secrets_registry.register(_query(approved)["code"])
    denied = requests.post(
        f"{url}/_sandbox/oauth/authorize",
        json={"url": authorize_url, "decision": "deny"},
        timeout=TIMEOUT,
    ).json()["location"]
    assert _query(denied)["error"] == "access_denied"
    bad = requests.post(
        f"{url}/_sandbox/oauth/authorize",
        json={"url": authorize_url.replace("bridge-1", "nobody")},
        timeout=TIMEOUT,
    )
    assert bad.status_code == 400

    issued = requests.post(
        f"{url}/_sandbox/oauth/tokens", json={"clientId": "bridge-1"}, timeout=TIMEOUT
    ).json()["data"]
    _tokens(issued)
    grants = requests.get(f"{url}/_sandbox/oauth/grants", timeout=TIMEOUT).json()["data"]
    assert [g["id"] for g in grants] == [issued["grantId"]]
    revoked = requests.post(
        f"{url}/_sandbox/oauth/grants/{issued['grantId']}/revoke", timeout=TIMEOUT
    ).json()["data"]
    assert revoked["revoked"]
    switches = requests.patch(
        f"{url}/_sandbox/switches", json={"oauthAccessTokenLifetime": 90}, timeout=TIMEOUT
    ).json()["data"]
    assert switches["oauth_access_token_lifetime"] == 90
    requests.post(f"{url}/_sandbox/reset", json={}, timeout=TIMEOUT)
    assert pleo_sandbox.state.oauth_clients() == []


def test_client_registration_is_validated(pleo_sandbox):
    state = pleo_sandbox.state
    company = state.add_company()
    with pytest.raises(ValueError, match="redirect URI"):
        state.add_oauth_client(company_id=company.id)
    with pytest.raises(ValueError, match="absolute"):
        state.add_oauth_client(redirect_uris=["/relative"], company_id=company.id)
    with pytest.raises(ValueError, match="company"):
        state.add_oauth_client(redirect_uris=[REDIRECT])
    with pytest.raises(ValueError, match="unknown scopes"):
        state.add_oauth_client(redirect_uris=[REDIRECT], company_id=company.id, scopes=["x:y"])
    org = state.add_organisation(n_companies=2)
    client = state.add_oauth_client(
        "fixed", client_secret="fixed-secret", redirect_uris=REDIRECT, organisation_id=org.id
    )
    secrets_registry.register("fixed-secret")
    assert client.client_secret == "fixed-secret"
    with pytest.raises(ValueError, match="exists"):
        state.add_oauth_client("fixed", redirect_uris=REDIRECT, organisation_id=org.id)
