"""OAuth 2.0 at the HTTP level: ``exports.pleo.oauth`` (PKCE, the authorize URL, the code
exchange and the token endpoint's errors, typed and never retried), with ``responses``.

The refresh rules of ``exports.services.oauth`` are in ``tests/test_oauth_service.py``; the
helpers in ``tests/oauth_support.py``.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from responses import matchers

from exports.pleo import oauth as pleo_oauth
from tests import secrets_registry
from tests.oauth_support import AUTH, REDIRECT, TOKEN_URL, token_answer


def _config():
    return pleo_oauth.OAuthConfig(
        base_url=AUTH,
        client_id="cid",
        client_secret=secrets_registry.register("client-secret-unit-4242"),
    )


# --- exports.pleo.oauth ---------------------------------------------------------------------------


def test_pkce_known_answer_and_fresh_verifiers():
    # RFC 7636, appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pleo_oauth.code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    pairs = [pleo_oauth.new_pkce() for _ in range(20)]
    assert len({p.verifier for p in pairs}) == 20
    for pair in pairs:
        assert 43 <= len(pair.verifier) <= 128
        assert set(pair.verifier) <= pleo_oauth.VERIFIER_ALPHABET
        assert pair.challenge == pleo_oauth.code_challenge(pair.verifier)
        assert pair.verifier not in repr(pair)
    for bad in ("short", "x" * 129, "a" * 42 + "!"):
        with pytest.raises(ValueError):
            pleo_oauth.code_challenge(bad)
    with pytest.raises(ValueError):
        pleo_oauth.new_code_verifier(42)


def test_authorize_url():
    url = pleo_oauth.authorize_url(
        base_url=AUTH + "/",
        client_id="cid",
        redirect_uri=REDIRECT,
        scopes=["export-jobs:read", "export-items:read"],
        state="st",
        challenge="ch",
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == AUTH + "/oauth/authorize"
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == {
        "client_id": "cid",
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "export-jobs:read export-items:read",
        "state": "st",
        "code_challenge": "ch",
        "code_challenge_method": "S256",
    }


@responses.activate
def test_exchange_code_posts_the_form_with_tight_timeouts():
    secrets_registry.register("the-code-1234")
    secrets_registry.register("v" * 43)
    responses.post(
        TOKEN_URL,
        json=token_answer(),
        match=[
            matchers.urlencoded_params_matcher(
                {
                    "grant_type": "authorization_code",
                    "code": "the-code-1234",
                    "redirect_uri": REDIRECT,
                    "code_verifier": "v" * 43,
                    "client_id": "cid",
                    "client_secret": "client-secret-unit-4242",
                }
            )
        ],
    )
    tokens = pleo_oauth.exchange_code(
        _config(), code="the-code-1234", redirect_uri=REDIRECT, code_verifier="v" * 43
    )
    assert tokens.access_token == "at_new_0001_abcd"
    assert tokens.refresh_token == "rt_new_0001_abcd"
    assert tokens.expires_in == 3600
    assert "at_new" not in repr(tokens) and "rt_new" not in repr(tokens)
    assert "client-secret" not in repr(_config())
    call = responses.calls[0]
    assert call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert call.request.req_kwargs["timeout"] == (3.0, 10.0)


@pytest.mark.parametrize(
    "answer, error_class, error",
    [
        (dict(status=400, json={"error": "invalid_grant"}), pleo_oauth.OAuthInvalidGrant, None),
        (
            dict(status=401, json={"error": "invalid_client", "error_description": "bad"}),
            pleo_oauth.OAuthError,
            "invalid_client",
        ),
        (dict(status=400, json={"error": "invalid_request"}), pleo_oauth.OAuthError, None),
        (dict(status=500, body="oops"), pleo_oauth.OAuthOutcomeUnknown, None),
        (dict(status=503, json={"error": "x"}), pleo_oauth.OAuthOutcomeUnknown, None),
        (dict(status=429, json={}), pleo_oauth.OAuthUnavailable, None),
        (dict(status=200, body="not json"), pleo_oauth.OAuthOutcomeUnknown, None),
        (dict(status=200, json={"access_token": "a"}), pleo_oauth.OAuthOutcomeUnknown, None),
        (
            dict(status=200, json={**token_answer(), "expires_in": -1}),
            pleo_oauth.OAuthOutcomeUnknown,
            None,
        ),
        (
            dict(status=200, json={**token_answer(), "token_type": "mac"}),
            pleo_oauth.OAuthOutcomeUnknown,
            None,
        ),
        (dict(body=requests.exceptions.ReadTimeout()), pleo_oauth.OAuthOutcomeUnknown, None),
        (
            dict(body=requests.exceptions.ChunkedEncodingError()),
            pleo_oauth.OAuthOutcomeUnknown,
            None,
        ),
        (dict(body=requests.exceptions.ConnectTimeout()), pleo_oauth.OAuthUnavailable, None),
    ],
)
@responses.activate
def test_token_errors_are_typed(answer, error_class, error):
    secrets_registry.register("rt_presented_5555")
    responses.post(TOKEN_URL, **answer)
    with pytest.raises(pleo_oauth.OAuthError) as caught:
        pleo_oauth.refresh_tokens(_config(), refresh_token="rt_presented_5555")
    assert type(caught.value) is error_class
    if error:
        assert caught.value.error == error
    assert "rt_presented" not in str(caught.value) and "client-secret" not in str(caught.value)
    # No traceback (whose frames hold the request body) is chained to the error.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__
    assert len(responses.calls) == 1  # never retried


def test_connection_refused_is_unavailable():
    config = pleo_oauth.OAuthConfig(base_url="http://127.0.0.1:9", client_id="c", client_secret="s")
    with pytest.raises(pleo_oauth.OAuthUnavailable):
        pleo_oauth.refresh_tokens(config, refresh_token="rt")
