"""v1 subscriptions and signed ``v1.export-job.created`` deliveries, with retries."""

import base64
import socket
import time
import uuid

import pytest

from pleo_sandbox.signing import verify
from tests.openapi_schemas import validate, validate_response

SUBS = "webhook-subscriptions"


def subscribe(api, url, **extra) -> dict:
    body = {"endpointUrl": url, "eventTypes": ["v1.export-job.created"], **extra}
    validate(body, "SubscriptionRequest", spec=SUBS, no_extra_fields=True)
    response = api.post("/v1/subscriptions", json=body)
    assert response.status_code == 200, response.text
    validate_response(response.json(), "POST", "/v1/subscriptions", 200)
    validate(response.json(), "SubscriptionResponse", spec=SUBS, no_extra_fields=True)
    return response.json()["data"]


def secret_of(api, sub_id) -> str:
    response = api.get(f"/v1/subscriptions/{sub_id}/secret")
    assert response.status_code == 200
    validate(response.json(), "SubscriptionSecretResponse", spec=SUBS, no_extra_fields=True)
    return response.json()["data"]["secretKey"]


def create_job_via_api(sb, company_id=None, n=2) -> dict:
    body = {
        "companyId": company_id or sb.company.id,
        "accountingEntryIds": [str(uuid.uuid4()) for _ in range(n)],
    }
    response = sb.api.post("/v3/export-jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()["data"]


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


def test_job_created_delivery_is_signed_and_verifiable(sb, receiver):
    hook = receiver()
    sub = subscribe(sb.api, hook.url)
    secret = secret_of(sb.api, sub["id"])
    started = time.monotonic()
    job = create_job_via_api(sb)
    [delivery] = hook.wait_for(1)
    headers = delivery["headers"]
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"].startswith("msg_")
    assert headers["webhook-signature"].startswith("v1,")
    assert abs(int(headers["webhook-timestamp"]) - sb.state.now().timestamp()) < 5
    assert verify(secret, headers, delivery["body"], now=sb.state.now().timestamp())
    assert not verify(secret, headers, delivery["body"] + b" ", now=sb.state.now().timestamp())
    payload = delivery["json"]
    assert set(payload) == {"data", "eventId", "eventType"}
    assert payload["eventType"] == "v1.export-job.created"
    uuid.UUID(payload["eventId"])
    assert payload["data"] == {
        "companyId": job["companyId"],
        "createdAt": job["createdAt"],
        "createdBy": job["createdBy"],
        "expiresIn": job["expiresIn"],
        "id": job["id"],
        "numberOfItems": 2,
        "status": "pending",
    }
    assert delivery["at"] - started < 2
    [logged] = sb.state.wait_for_deliveries(1, outcome="delivered")
    assert logged["webhookId"] == headers["webhook-id"]
    assert logged["status"] == 204 and logged["attempt"] == 1
    assert logged["jobId"] == job["id"] and logged["subscriptionId"] == sub["id"]
    assert secret not in repr(sb.state.webhook_deliveries())


def test_control_created_jobs_notify_too_and_headers_and_basic_auth(sb, receiver):
    hook = receiver()
    subscribe(
        sb.api,
        hook.url,
        customHeaders={"x-tenant": "acme"},
        endpointAuth={"type": "BASIC", "credentials": {"username": "pleo", "password": "s3cret"}},
    )
    sb.state.create_job(sb.company.id, 1)
    [delivery] = hook.wait_for(1)
    assert delivery["headers"]["x-tenant"] == "acme"
    expected = "Basic " + base64.b64encode(b"pleo:s3cret").decode()
    assert delivery["headers"]["authorization"] == expected
    # The password is neither echoed by the API nor logged.
    listed = sb.api.get("/v1/subscriptions").json()["data"][0]
    assert listed["endpointAuth"] == {"type": "BASIC", "credentials": {"username": "pleo"}}
    sb.state.wait_for_deliveries(1, outcome="delivered")
    assert "s3cret" not in repr(sb.state.webhook_deliveries())


def test_failed_delivery_is_retried_with_the_same_webhook_id(sb, receiver):
    sb.state.set_switches(webhook_retry_schedule=[0.05, 0.1, 0.1])
    hook = receiver(statuses=[500, 503])
    sub = subscribe(sb.api, hook.url)
    secret = secret_of(sb.api, sub["id"])
    create_job_via_api(sb)
    received = hook.wait_for(3)
    ids = {d["headers"]["webhook-id"] for d in received}
    assert len(ids) == 1
    event_ids = {d["json"]["eventId"] for d in received}
    assert len(event_ids) == 1
    for d in received:
        assert verify(secret, d["headers"], d["body"], now=sb.state.now().timestamp())
    assert received[1]["at"] - received[0]["at"] >= 0.04
    log = sb.state.wait_for_deliveries(1, outcome="delivered")
    attempts = sb.state.webhook_deliveries()
    assert [(a["attempt"], a["status"], a["outcome"]) for a in attempts] == [
        (1, 500, "retrying"),
        (2, 503, "retrying"),
        (3, 204, "delivered"),
    ]
    assert attempts[0]["nextAttemptInSeconds"] == 0.05
    assert log[0]["webhookId"] == attempts[0]["webhookId"]


def test_delivery_gives_up_after_the_schedule(sb):
    sb.state.set_switches(webhook_retry_schedule=[0.02, 0.02], webhook_timeout_seconds=0.5)
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    subscribe(sb.api, dead)
    create_job_via_api(sb)
    sb.state.wait_for_deliveries(1, outcome="failed")
    attempts = sb.state.webhook_deliveries()
    assert [a["outcome"] for a in attempts] == ["retrying", "retrying", "failed"]
    assert all(a["status"] is None and a["error"] for a in attempts)
    assert sb.state.webhooks.wait_idle(2)


def test_delivery_does_not_block_the_api(sb, receiver):
    hook = receiver(delay=0.8)
    subscribe(sb.api, hook.url)
    started = time.monotonic()
    create_job_via_api(sb)
    assert time.monotonic() - started < 0.5
    hook.wait_for(1)


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


def test_deleted_subscription_stops_retries(sb, receiver):
    sb.state.set_switches(webhook_retry_schedule=[0.3, 0.3])
    hook = receiver(statuses=[500, 500, 500])
    sub = subscribe(sb.api, hook.url)
    create_job_via_api(sb)
    hook.wait_for(1)
    assert sb.api.delete(f"/v1/subscriptions/{sub['id']}").status_code == 204
    sb.state.wait_for_deliveries(1, outcome="cancelled")
    assert len(hook.received) == 1


def test_slow_receiver_times_out_and_is_retried(sb, receiver):
    sb.state.set_switches(webhook_timeout_seconds=0.2, webhook_retry_schedule=[0.05])
    hook = receiver(delay=0.5)
    subscribe(sb.api, hook.url)
    create_job_via_api(sb)
    sb.state.wait_for_deliveries(1, outcome="failed", timeout=5)
    attempts = sb.state.webhook_deliveries()
    assert [a["outcome"] for a in attempts] == ["retrying", "failed"]
    assert all(a["status"] is None and "timed out" in a["error"] for a in attempts)
    assert all(a["durationSeconds"] < 0.45 for a in attempts)
