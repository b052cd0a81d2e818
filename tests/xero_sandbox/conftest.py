"""``xero_call``: one request to the Xero sandbox whose answer is checked against Xero's OpenAPI
files whenever the spec documents that status for that operation."""

from __future__ import annotations

import pytest
import requests

from tests.xero_sandbox.openapi import API, validate_response

KINDS = {
    "manualjournals": "ManualJournal",
    "invoices": "Invoice",
    "creditnotes": "CreditNote",
    "contacts": "Contact",
}


@pytest.fixture
def xero_call(xero_sandbox):
    session = requests.Session()

    def call(method: str, path: str, *, headers=None, validate=True, **kwargs):
        full = path if path.startswith("/connect") or path.startswith("/identity") else path
        base = xero_sandbox.url
        answer = session.request(
            method,
            base + full,
            headers={**xero_sandbox.headers(), **(headers or {})},
            timeout=5,
            **kwargs,
        )
        if validate and answer.status_code in (200, 400) and path.startswith(API):
            body = answer.json() if answer.content else None
            kind = KINDS.get(path[len(API) :].strip("/").split("/")[0].lower())
            validate_response(body, method, path.split("?")[0], answer.status_code, kind=kind)
        return answer

    yield call
    session.close()
