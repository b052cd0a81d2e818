"""Subscriptions read generously and changed without clearing what Pleo holds.

``eventTypes`` may come as a single string; a subscription that must change is updated in place
only when Pleo holds no ``endpointAuth``/``customHeaders`` for it, otherwise it is replaced (new
subscription, its secret stored, the old one deleted), as a rotation does. Against the sandbox
over real HTTP, and one answer shape Pleo's pages allow faked at the transport.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
import requests
import responses

from exports.models import WebhookEndpoint
from exports.services.companies import webhook_endpoint_url
from exports.services.subscriptions import webhooks_subscribe
from tests import secrets_registry
from tests.factories import make_company, make_credential
from tests.test_subscriptions import fast_client as fast_client  # noqa: F401  (fixture)
from tests.test_subscriptions import new_secret

pytestmark = pytest.mark.django_db

PUBLIC = "https://bridge.example.com"
EVENT = "v1.export-job.created"


@pytest.fixture
def sandboxed(pleo_sandbox, fast_client):
    state = pleo_sandbox.state
    remote = state.add_company("Sandbox Acme")
    key = state.add_api_key(remote.id)
    secrets_registry.register(key.key)
    credential = make_credential(api_key=key.key, api_base_url=pleo_sandbox.url)
    make_company(name="Acme", pleo_company_id=uuid.UUID(remote.id), credential=credential)
    return pleo_sandbox, key, credential


def endpoint_of(credential) -> WebhookEndpoint:
    return WebhookEndpoint.objects.get(credential=credential)


def create_directly(sandbox, key, body) -> dict:
    """A subscription made outside the bridge (e.g. by hand, with Pleo's API)."""
    response = requests.post(
        f"{sandbox.url}/v1/subscriptions", json=body, headers=key.auth_header(), timeout=5
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


def register_secrets(credential) -> None:
    for entry in endpoint_of(credential).secret_entries():
        secrets_registry.register(entry["secret"])


@pytest.mark.parametrize(
    "held",
    [
        {"endpointAuth": {"type": "BASIC", "credentials": {"username": "u", "password": "pw"}}},
        {"customHeaders": {"X-Bridge-Token": "tok"}},
    ],
    ids=["endpointAuth", "customHeaders"],
)
def test_a_subscription_carrying_delivery_settings_is_replaced_not_cleared(sandboxed, held):
    sandbox, key, credential = sandboxed
    url = webhook_endpoint_url(endpoint=endpoint_of(credential))
    old = create_directly(
        sandbox, key, {"endpointUrl": url, "eventTypes": [EVENT], "status": "INACTIVE", **held}
    )
    WebhookEndpoint.objects.filter(credential=credential).update(pleo_subscription_id=old["id"])

    message = webhooks_subscribe(credential=credential)
    register_secrets(credential)

    assert message.startswith("Replaced"), message
    assert "endpointAuth or customHeaders" in message
    (new,) = sandbox.state.subscriptions()
    assert new["id"] != old["id"] and new["status"] == "ACTIVE"
    old_path = f"/v1/subscriptions/{old['id']}"
    assert sandbox.state.requests("PUT", old_path) == []  # never updated (cleared)
    assert [e["status"] for e in sandbox.state.requests("DELETE", old_path)] == [204]
    endpoint = endpoint_of(credential)
    assert endpoint.pleo_subscription_id == new["id"]
    assert [e["subscription_id"] for e in endpoint.secret_entries()] == [new["id"]]
    assert webhooks_subscribe(credential=credential).startswith("Kept")


def test_a_plain_subscription_of_ours_is_still_updated_in_place(sandboxed):
    sandbox, key, credential = sandboxed
    url = webhook_endpoint_url(endpoint=endpoint_of(credential))
    old = create_directly(sandbox, key, {"endpointUrl": url, "eventTypes": [EVENT]})
    requests.put(
        f"{sandbox.url}/v1/subscriptions/{old['id']}",
        json={"endpointUrl": url, "eventTypes": [EVENT], "status": "INACTIVE"},
        headers=key.auth_header(),
        timeout=5,
    )
    WebhookEndpoint.objects.filter(credential=credential).update(pleo_subscription_id=old["id"])
    assert webhooks_subscribe(credential=credential).startswith("Updated")
    register_secrets(credential)
    (sub,) = sandbox.state.subscriptions()
    assert (sub["id"], sub["status"]) == (old["id"], "ACTIVE")


def test_the_replaced_subscription_left_behind_is_removed_by_the_next_subscribe(sandboxed):
    sandbox, key, credential = sandboxed
    url = webhook_endpoint_url(endpoint=endpoint_of(credential))
    auth = {"type": "BASIC", "credentials": {"username": "u", "password": "pw"}}
    old = create_directly(
        sandbox,
        key,
        {"endpointUrl": url, "eventTypes": [EVENT], "status": "INACTIVE", "endpointAuth": auth},
    )
    WebhookEndpoint.objects.filter(credential=credential).update(pleo_subscription_id=old["id"])
    sandbox.state.add_fault("status", "DELETE", f"/v1/subscriptions/{old['id']}", status=500)
    with pytest.raises(Exception, match="still exists at Pleo: run subscribe"):
        webhooks_subscribe(credential=credential)
    register_secrets(credential)
    assert len(sandbox.state.subscriptions()) == 2
    assert webhooks_subscribe(credential=credential).startswith("Kept")
    (sub,) = sandbox.state.subscriptions()
    assert sub["id"] == endpoint_of(credential).pleo_subscription_id != old["id"]


def test_event_types_as_a_single_string_keep_the_subscription(db, fast_client):
    base = "https://pleo.test"
    credential = make_credential(api_base_url=base)
    url = webhook_endpoint_url(endpoint=endpoint_of(credential))
    sub_id = str(uuid.uuid4())
    sub = {
        "id": sub_id,
        "endpointUrl": url,
        "eventTypes": EVENT,  # a single string, not an array
        "status": "ACTIVE",
        "createdAt": "2025-01-01T00:00:00Z",
        "updatedAt": "2025-01-01T00:00:00Z",
    }
    WebhookEndpoint.objects.filter(credential=credential).update(pleo_subscription_id=sub_id)
    info = {"currentRequestPagination": {"parameters": {}}, "hasNextPage": False}
    with responses.RequestsMock() as rsps:
        rsps.get(f"{base}/v1/subscriptions/{sub_id}", json={"data": sub})
        rsps.get(
            re.compile(rf"{base}/v1/subscriptions(\?.*)?$"),
            json={"data": [sub], "pagination": {**info, "hasPreviousPage": False}},
        )
        rsps.get(
            f"{base}/v1/subscriptions/{sub_id}/secret",
            body=json.dumps({"data": {"secretKey": new_secret()}}),
        )
        assert webhooks_subscribe(credential=credential).startswith("Kept")
        assert not [c for c in rsps.calls if c.request.method in ("PUT", "POST", "DELETE")]
