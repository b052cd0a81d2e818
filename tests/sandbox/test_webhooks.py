"""Signed ``v1.export-job.created`` deliveries, with retries (``pleo_sandbox.webhooks``)."""

import base64
import socket
import time
import uuid

from pleo_sandbox.signing import verify
from tests.sandbox.helpers import create_job_via_api, secret_of, subscribe


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
