"""The Xero client (responses): the tenant header, rate limits told apart, the host allow-list
before any token is read, Xero's error bodies, the audit hook, and Xero's OAuth client auth."""

from __future__ import annotations

import base64

import pytest
import responses

from exports.pleo import BearerAuth
from exports.pleo import oauth as pleo_oauth
from exports.pleo.connection import ClientConfig
from exports.xero import oauth as xero_oauth
from exports.xero.client import XeroClient
from exports.xero.errors import (
    XeroBadRequest,
    XeroError,
    XeroHostNotAllowed,
    XeroRateLimited,
)
from tests.test_pleo_hosts import check_findings
from tests.xero.support import ACCOUNTING, API, TENANT, TOKEN_URL, connections_body

pytestmark = pytest.mark.usefixtures("xero_settings")


def client(base_url=API) -> tuple[XeroClient, list, list]:
    """A client whose sleeps and token reads are recorded."""
    tokens, sleeps = [], []

    def get_token():
        tokens.append("xat-client-0001")
        return "xat-client-0001"

    built = XeroClient(
        config=ClientConfig(base_url=base_url, max_attempts=3),
        auth=BearerAuth(get_token),
        tenant_id=TENANT,
        sleep=sleeps.append,
        rng=lambda: 0.0,
    )
    return built, sleeps, tokens


@responses.activate
def test_the_tenant_header_goes_with_accounting_calls_only():
    responses.get(f"{API}/connections", json=connections_body((TENANT, "Demo")))
    responses.get(f"{ACCOUNTING}/TaxRates", json={"TaxRates": []})
    xero, _, _ = client()
    [connection] = xero.connections()
    assert connection.tenant_id == TENANT and connection.tenant_name == "Demo"
    assert xero.tax_rates() == []
    first, second = (call.request.headers for call in responses.calls)
    assert "xero-tenant-id" not in first
    assert second["xero-tenant-id"] == str(TENANT)
    assert second["Authorization"] == "Bearer xat-client-0001"


@responses.activate
def test_a_minute_limit_is_retried_after_retry_after_and_a_day_limit_is_not():
    minute = {"Retry-After": "2", "X-Rate-Limit-Problem": "minute"}
    responses.get(f"{ACCOUNTING}/Accounts", status=429, headers=minute)
    responses.get(
        f"{ACCOUNTING}/Accounts", json={"Accounts": []}, headers={"X-DayLimit-Remaining": "4990"}
    )
    xero, sleeps, _ = client()
    assert xero.accounts() == []
    assert sleeps and sleeps[0] >= 2.0
    assert xero.rate_limits["X-DayLimit-Remaining"] == 4990

    responses.reset()
    day = {"Retry-After": "20", "X-Rate-Limit-Problem": "day"}
    responses.get(f"{ACCOUNTING}/Accounts", status=429, headers=day)
    xero, sleeps, _ = client()
    with pytest.raises(XeroRateLimited) as caught:
        xero.accounts()
    assert len(responses.calls) == 1 and sleeps == []
    assert caught.value.rate_limit_problem == "day"
    assert "day limit" in str(caught.value)


@responses.activate
def test_a_host_outside_the_allow_list_gets_nothing_not_even_a_token_read():
    xero, _, tokens = client(base_url="https://api.xero.com.evil.example")
    with pytest.raises(XeroHostNotAllowed, match="not a Xero host"):
        xero.accounts()
    assert len(responses.calls) == 0 and tokens == []


@responses.activate
def test_xero_error_bodies_are_read_and_every_call_is_reported_to_the_audit_hook():
    responses.get(
        f"{ACCOUNTING}/Organisation",
        status=400,
        json={"ErrorNumber": 10, "Type": "ValidationException", "Message": "A bad request"},
    )
    seen = []
    xero = XeroClient(
        config=ClientConfig(base_url=API, max_attempts=1),
        auth=BearerAuth(lambda: "xat-client-0001"),
        tenant_id=TENANT,
        after_response=lambda *call: seen.append(call),
    )
    with pytest.raises(XeroBadRequest) as caught:
        xero.organisation()
    assert isinstance(caught.value, XeroError)
    assert caught.value.error_type == "ValidationException"
    assert "A bad request" in str(caught.value)
    assert seen == [("GET", "/api.xro/2.0/Organisation", 400)]


@responses.activate
def test_the_token_request_authenticates_with_http_basic_and_goes_to_xero_only(settings):
    responses.post(
        TOKEN_URL,
        json={"access_token": "a1", "refresh_token": "r1", "expires_in": 1800, "scope": "x"},
    )
    config = xero_oauth.oauth_config(
        identity_base_url="https://identity.xero.com", client_id="cid", client_secret="csecret"
    )
    tokens = pleo_oauth.refresh_tokens(config, refresh_token="r0")
    assert tokens.access_token == "a1" and tokens.scope == "x"
    request = responses.calls[0].request
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"cid:csecret").decode()
    assert "csecret" not in request.body and "client_secret" not in request.body
    with pytest.raises(ValueError, match="not a Xero host"):
        xero_oauth.oauth_config(
            identity_base_url="https://auth.pleo.io", client_id="cid", client_secret="s"
        )


def test_system_check_refuses_xero_urls_outside_the_allow_list_and_loopback_without_sandbox(
    settings,
):
    settings.XERO_API_BASE_URL = "https://api.xero.com.evil.example"
    settings.XERO_LOGIN_BASE_URL = "http://127.0.0.1:8766"
    settings.XERO_ALLOW_LOOPBACK = False
    settings.XERO_ALLOWED_HOSTS = [*settings.XERO_ALLOWED_HOSTS, "https://login.xero.com"]
    found = check_findings()
    assert ("exports.E104", "XERO_API_BASE_URL") in found
    assert ("exports.E104", "XERO_LOGIN_BASE_URL") in found
    assert ("exports.E103", "XERO_ALLOWED_HOSTS:") in found
    assert not any(e[1] == "XERO_IDENTITY_BASE_URL" for e in found)
    settings.XERO_ALLOW_LOOPBACK = True
    found = check_findings()
    assert ("exports.E104", "XERO_LOGIN_BASE_URL") not in found
