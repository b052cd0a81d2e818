"""Organisation, accounts, tax rates, tracking categories and connections: shapes exactly as
Xero's OpenAPI files declare them, the limit headers on every answer, tenant checks."""

from __future__ import annotations

import requests

from tests.xero_sandbox.openapi import API, validate_response

SETTINGS = ("Organisation", "Accounts", "TaxRates", "TrackingCategories")


def test_settings_reads_match_the_spec_for_every_demo_organisation(xero_sandbox, xero_call):
    tenants = xero_sandbox.state.tenants()
    assert len(tenants) >= 3
    for tenant in tenants:
        for name in SETTINGS:
            answer = xero_call("GET", f"{API}/{name}", headers={"xero-tenant-id": tenant.id})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            key = "Organisations" if name == "Organisation" else name
            assert body[key], name
            for header in ("X-MinLimit-Remaining", "X-DayLimit-Remaining"):
                assert int(answer.headers[header]) >= 0
    org = xero_call("GET", f"{API}/Organisation").json()["Organisations"][0]
    assert org["OrganisationID"] == xero_sandbox.tenant.id
    assert "PeriodLockDate" not in org  # left out until set


def test_single_reads_where_and_404(xero_sandbox, xero_call):
    accounts = xero_call("GET", f"{API}/Accounts", params={"where": 'Code=="400"'}).json()
    assert [a["Code"] for a in accounts["Accounts"]] == ["400"]
    account_id = accounts["Accounts"][0]["AccountID"]
    one = xero_call("GET", f"{API}/Accounts/{account_id}").json()["Accounts"]
    assert one[0]["Code"] == "400"
    tax_type = xero_call("GET", f"{API}/TaxRates").json()["TaxRates"][0]["TaxType"]
    assert xero_call("GET", f"{API}/TaxRates/{tax_type}").json()["TaxRates"][0]["TaxType"] == (
        tax_type
    )
    category = xero_call("GET", f"{API}/TrackingCategories").json()["TrackingCategories"][0]
    got = xero_call("GET", f"{API}/TrackingCategories/{category['TrackingCategoryID']}").json()
    assert got["TrackingCategories"][0]["Options"]
    missing = xero_call("GET", f"{API}/Accounts/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert xero_call("GET", f"{API}/accounts").status_code == 200  # paths are case-insensitive
    bad_where = xero_call("GET", f"{API}/Accounts", params={"where": "Code.StartsWith(4)"})
    assert bad_where.status_code == 400


def test_connections_list_and_delete(xero_sandbox):
    headers = xero_sandbox.headers()
    answer = requests.get(f"{xero_sandbox.url}/connections", headers=headers, timeout=5)
    assert answer.status_code == 200
    body = answer.json()
    validate_response(body, "GET", "/connections", 200)
    assert {c["tenantId"] for c in body} == {t.id for t in xero_sandbox.state.tenants()}
    event = body[0]["authEventId"]
    filtered = requests.get(
        f"{xero_sandbox.url}/connections", params={"authEventId": event}, headers=headers, timeout=5
    ).json()
    assert len(filtered) == len(body)
    first = body[0]
    gone = requests.delete(
        f"{xero_sandbox.url}/connections/{first['id']}", headers=headers, timeout=5
    )
    assert gone.status_code == 204 and not gone.content
    refused = requests.get(
        f"{xero_sandbox.api_url}/Organisation",
        headers=xero_sandbox.headers(tenant=first["tenantId"]),
        timeout=5,
    )
    assert refused.status_code == 403
    assert refused.json()["Title"] == "Forbidden"
    again = requests.delete(
        f"{xero_sandbox.url}/connections/{first['id']}", headers=headers, timeout=5
    )
    assert again.status_code == 404


def test_tenant_header_token_and_scope_are_checked(xero_sandbox):
    url = f"{xero_sandbox.api_url}/Accounts"
    headers = xero_sandbox.headers()
    no_tenant = {k: v for k, v in headers.items() if k != "xero-tenant-id"}
    assert requests.get(url, headers=no_tenant, timeout=5).status_code == 403
    other = xero_sandbox.state.add_organisation("Not Connected ApS")
    assert (
        requests.get(url, headers=xero_sandbox.headers(tenant=other), timeout=5).status_code == 403
    )
    no_token = {k: v for k, v in headers.items() if k != "Authorization"}
    unauthorized = requests.get(url, headers=no_token, timeout=5)
    assert unauthorized.status_code == 401 and "WWW-Authenticate" in unauthorized.headers
    state = xero_sandbox.state
    narrow = state.oauth_issue_tokens(xero_sandbox.client, scopes=["accounting.contacts.read"])
    read_only = xero_sandbox.headers(token=narrow["access_token"])
    assert requests.get(url, headers=read_only, timeout=5).status_code == 403
    contacts = f"{xero_sandbox.api_url}/Contacts"
    assert requests.get(contacts, headers=read_only, timeout=5).status_code == 200
    put = requests.put(contacts, headers=read_only, json={"Contacts": [{"Name": "A"}]}, timeout=5)
    assert put.status_code == 403


def test_broad_scope_model_accepts_accounting_transactions(xero_sandbox):
    state = xero_sandbox.state
    state.set_switches(scope_model="broad")
    tokens = state.oauth_issue_tokens(
        xero_sandbox.client, scopes=["accounting.transactions.read", "accounting.settings.read"]
    )
    answer = requests.get(
        f"{xero_sandbox.api_url}/ManualJournals",
        headers=xero_sandbox.headers(token=tokens["access_token"]),
        timeout=5,
    )
    assert answer.status_code == 200


def test_accounting_calls_must_ask_for_json(xero_sandbox):
    headers = {**xero_sandbox.headers(), "Accept": "*/*"}
    url = f"{xero_sandbox.api_url}/Organisation"
    refused = requests.get(url, headers=headers, timeout=5)
    assert refused.status_code == 406 and "Accept: application/json" in refused.json()["Detail"]
    xero_sandbox.state.set_switches(accept_json_required=False)
    assert requests.get(url, headers=headers, timeout=5).status_code == 200
