"""v1 subscriptions over real HTTP: CRUD, ownership, validation, and who receives the
job-created event (``pleo_sandbox.subscriptions``)."""

import base64

import pytest

from tests.openapi_schemas import validate, validate_response
from tests.sandbox.helpers import SUBS, secret_of, subscribe


def test_subscription_crud(sb):
    sub = subscribe(sb.api, "https://example.com/hook", customHeaders={"x-tenant": "acme"})
    assert sub["status"] == "ACTIVE" and sub["eventTypes"] == ["v1.export-job.created"]
    assert sub["customHeaders"] == {"x-tenant": "acme"}
    assert "deletedAt" not in sub

    got = sb.api.get(f"/v1/subscriptions/{sub['id']}")
    assert got.status_code == 200 and got.json()["data"] == sub
    listed = sb.api.get("/v1/subscriptions").json()
    validate(listed, "CursorPaginatedResponseSubscriptionModel", spec=SUBS, no_extra_fields=True)
    assert [s["id"] for s in listed["data"]] == [sub["id"]]

    secret = secret_of(sb.api, sub["id"])
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24

    sb.state.advance_clock(5)
    updated = sb.api.put(
        f"/v1/subscriptions/{sub['id']}",
        json={
            "endpointUrl": "https://example.com/v2",
            "eventTypes": ["v1.export-job.created"],
            "status": "INACTIVE",
        },
    )
    assert updated.status_code == 200
    validate_response(updated.json(), "PUT", "/v1/subscriptions/{id}", 200)
    data = updated.json()["data"]
    assert (data["endpointUrl"], data["status"]) == ("https://example.com/v2", "INACTIVE")
    assert data["updatedAt"] > data["createdAt"]
    assert sb.api.get("/v1/subscriptions", params={"status": "ACTIVE"}).json()["data"] == []

    activities = sb.api.get(f"/v1/subscriptions/{sub['id']}/activities").json()
    validate(activities, "CursorPaginatedResponseSubscriptionActivityModel", spec=SUBS)
    assert [a["operationType"] for a in activities["data"]] == ["CREATE", "UPDATE"]

    deleted = sb.api.delete(f"/v1/subscriptions/{sub['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert sb.api.get(f"/v1/subscriptions/{sub['id']}").status_code == 404
    assert sb.api.delete(f"/v1/subscriptions/{sub['id']}").status_code == 404
    assert sb.api.get("/v1/subscriptions").json()["data"] == []


def test_subscriptions_belong_to_their_credential(sb):
    sub = subscribe(sb.api, "https://example.com/hook")
    other_key = sb.state.add_api_key(sb.company.id)  # same company, other credential
    other = sb.client(other_key)
    assert other.get("/v1/subscriptions").json()["data"] == []
    for method, path in [
        ("GET", f"/v1/subscriptions/{sub['id']}"),
        ("GET", f"/v1/subscriptions/{sub['id']}/secret"),
        ("DELETE", f"/v1/subscriptions/{sub['id']}"),
    ]:
        assert other.request(method, path).status_code == 404
    other.close()
    assert sb.api.get(f"/v1/subscriptions/{sub['id']}").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"eventTypes": ["v1.export-job.created"]},
        {"endpointUrl": "ftp://x", "eventTypes": ["v1.export-job.created"]},
        {"endpointUrl": "https://x", "eventTypes": []},
        {"endpointUrl": "https://x", "eventTypes": ["export.everything"]},
        {"endpointUrl": "https://x", "eventTypes": ["v1.export-job.created"], "status": "ON"},
        {
            "endpointUrl": "https://x",
            "eventTypes": ["v1.export-job.created"],
            "endpointAuth": {"type": "OAUTH"},
        },
    ],
)
def test_invalid_subscription_requests(sb, body):
    response = sb.api.post("/v1/subscriptions", json=body)
    assert response.status_code == 400
    assert response.json()["type"] == "BAD_REQUEST"


def test_who_receives_what(sb, receiver):
    org = sb.state.add_organisation("Group", company_ids=[sb.company.id], n_companies=1)
    sister = org.company_ids[1]
    outsider = sb.state.add_company("Outsider")
    org_hook, own_hook, inactive_hook, outsider_hook, other_event_hook = (
        receiver() for _ in range(5)
    )
    org_api = sb.client(sb.state.add_api_key(organisation_id=org.id))
    subscribe(org_api, org_hook.url)
    subscribe(sb.api, own_hook.url)
    inactive = subscribe(sb.api, inactive_hook.url, status="INACTIVE")
    outsider_api = sb.client(sb.state.add_api_key(outsider.id))
    subscribe(outsider_api, outsider_hook.url)
    other = {"endpointUrl": other_event_hook.url, "eventTypes": ["v1.vendor.created"]}
    assert sb.api.post("/v1/subscriptions", json=other).status_code == 200

    sb.state.create_job(sb.company.id, 1)
    sb.state.create_job(sister, 1)
    org_hook.wait_for(2)
    own_hook.wait_for(1)
    assert sb.state.webhooks.wait_idle(3)
    assert {d["json"]["data"]["companyId"] for d in org_hook.received} == {sb.company.id, sister}
    assert [d["json"]["data"]["companyId"] for d in own_hook.received] == [sb.company.id]
    assert inactive_hook.received == outsider_hook.received == other_event_hook.received == []
    # Not even attempted: an inactive subscription gets no delivery at all.
    attempted = {d["subscriptionId"] for d in sb.state.webhook_deliveries()}
    assert inactive["id"] not in attempted and len(attempted) == 2
    org_api.close()
    outsider_api.close()
