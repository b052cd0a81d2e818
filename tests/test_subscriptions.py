"""Webhook subscription services (exports.services.subscriptions).

Unit tests run against a small stateful fake of Pleo's Subscriptions API at the transport
(``responses``); the end-to-end tests further down use the local sandbox over real HTTP.
"""

import base64
import json
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import responses

from exports import clock
from exports.models import Credential, WebhookEndpoint
from exports.services.companies import webhook_endpoint_add_secret, webhook_endpoint_url
from exports.services.subscriptions import (
    SubscriptionError,
    webhook_secret_rotate,
    webhook_secrets_prune,
    webhooks_subscribe,
    webhooks_unsubscribe,
)
from exports.services.webhooks import webhook_secrets_active
from tests import secrets_registry
from tests.factories import make_company, make_credential, make_sandbox_company_and_key

BASE = "https://pleo.test"
PUBLIC = "https://bridge.example.com"
EVENT = "v1.export-job.created"


def new_secret() -> str:
    return secrets_registry.register("whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())


class FakePleo:
    """``/v1/subscriptions*`` kept in a dict; ``calls`` lists (method, path) in order."""

    def __init__(self, rsps):
        self.subs: dict[str, dict] = {}
        self.secrets: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self.on_delete = None  # called with the id; may return an error status to answer
        self.secret_fails = lambda sub_id: False
        item = re.compile(rf"{BASE}/v1/subscriptions/[0-9a-f-]+$")
        secret = re.compile(rf"{BASE}/v1/subscriptions/[0-9a-f-]+/secret$")
        rsps.add_callback("GET", re.compile(rf"{BASE}/v1/subscriptions(\?.*)?$"), self.list)
        rsps.add_callback("POST", f"{BASE}/v1/subscriptions", self.create)
        rsps.add_callback("GET", secret, self.secret)
        rsps.add_callback("GET", item, self.get)
        rsps.add_callback("PUT", item, self.put)
        rsps.add_callback("DELETE", item, self.delete)

    def add(self, url, *, event_types=(EVENT,), status="ACTIVE"):
        sub_id = str(uuid.uuid4())
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.subs[sub_id] = {
            "id": sub_id,
            "endpointUrl": url,
            "eventTypes": list(event_types),
            "status": status,
            "createdAt": now,
            "updatedAt": now,
        }
        self.secrets[sub_id] = new_secret()
        return sub_id

    def _record(self, request):
        path = request.path_url.split("?")[0]
        self.calls.append((request.method, path))
        assert request.headers["Authorization"].startswith("Basic ")
        return path.split("/")[3] if path.count("/") >= 3 else None

    @staticmethod
    def _json(status, body):
        return status, {"Content-Type": "application/json"}, json.dumps(body)

    def _missing(self):
        return self._json(404, {"type": "NOT_FOUND", "message": "no such subscription"})

    def list(self, request):
        self._record(request)
        page_info = {"currentRequestPagination": {"parameters": {}}}
        page_info.update(hasNextPage=False, hasPreviousPage=False)
        return self._json(200, {"data": list(self.subs.values()), "pagination": page_info})

    def create(self, request):
        self._record(request)
        body = json.loads(request.body)
        sub_id = self.add(
            body["endpointUrl"], event_types=body["eventTypes"], status=body["status"]
        )
        return self._json(200, {"data": self.subs[sub_id]})

    def get(self, request):
        sub_id = self._record(request)
        return (
            self._json(200, {"data": self.subs[sub_id]}) if sub_id in self.subs else self._missing()
        )

    def put(self, request):
        sub_id = self._record(request)
        if sub_id not in self.subs:
            return self._missing()
        body = json.loads(request.body)
        self.subs[sub_id].update(
            endpointUrl=body["endpointUrl"], eventTypes=body["eventTypes"], status=body["status"]
        )
        return self._json(200, {"data": self.subs[sub_id]})

    def delete(self, request):
        sub_id = self._record(request)
        failure = self.on_delete(sub_id) if self.on_delete else None
        if failure:
            return self._json(failure, {"message": "injected"})
        if self.subs.pop(sub_id, None) is None:
            return self._missing()
        return 204, {}, ""

    def secret(self, request):
        sub_id = self._record(request)
        if sub_id not in self.subs:
            return self._missing()
        if self.secret_fails(sub_id):
            return self._json(500, {"message": "injected"})
        return self._json(200, {"data": {"secretKey": self.secrets[sub_id]}})

    def count(self, method, path_prefix="/v1/subscriptions"):
        return sum(1 for m, p in self.calls if m == method and p.startswith(path_prefix))


@pytest.fixture
def fast_client(settings):
    settings.PUBLIC_BASE_URL = PUBLIC
    settings.PLEO_MAX_ATTEMPTS = 1
    settings.PLEO_BACKOFF_BASE = 0
    settings.PLEO_BACKOFF_MAX = 0


@pytest.fixture
def pleo(fast_client):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakePleo(rsps)


@pytest.fixture
def credential(db):
    return make_company(name="Acme", credential=make_credential(api_base_url=BASE)).credential


def endpoint_of(credential) -> WebhookEndpoint:
    return WebhookEndpoint.objects.get(credential=credential)


def url_of(credential) -> str:
    return webhook_endpoint_url(endpoint=endpoint_of(credential))


def assert_no_secret_in(text):
    leaked = [s for s in secrets_registry.current() if s in text]
    assert not leaked


# --- Subscribe ------------------------------------------------------------------------------------


def test_subscribe_creates_the_subscription_and_stores_its_secret(pleo, credential):
    message = webhooks_subscribe(credential=credential)
    assert url_of(credential).startswith(f"{PUBLIC}/webhooks/pleo/")
    (sub_id,) = pleo.subs
    assert pleo.subs[sub_id]["endpointUrl"] == url_of(credential)
    assert pleo.subs[sub_id]["eventTypes"] == [EVENT]
    assert pleo.subs[sub_id]["status"] == "ACTIVE"
    endpoint = endpoint_of(credential)
    assert endpoint.pleo_subscription_id == sub_id
    assert endpoint.subscription_status == "ACTIVE"
    (entry,) = endpoint.secret_entries()
    assert entry["secret"] == pleo.secrets[sub_id]
    assert entry["subscription_id"] == sub_id and entry["retire_after"] is None
    assert message.startswith(f"Created Pleo webhook subscription {sub_id}")
    assert_no_secret_in(message)


def test_subscribe_again_is_harmless(pleo, credential):
    webhooks_subscribe(credential=credential)
    message = webhooks_subscribe(credential=credential)
    assert message.startswith("Kept")
    assert len(pleo.subs) == 1
    assert pleo.count("POST") == 1
    assert pleo.count("PUT") == 0
    assert len(endpoint_of(credential).secret_entries()) == 1


def test_subscribe_adopts_a_subscription_already_pointing_at_our_url(pleo, credential):
    """E.g. an earlier create whose answer was lost: found by URL, not created twice."""
    existing = pleo.add(url_of(credential))
    other = pleo.add("https://elsewhere.example.com/hook")
    message = webhooks_subscribe(credential=credential)
    assert pleo.count("POST") == 0
    assert endpoint_of(credential).pleo_subscription_id == existing
    assert set(pleo.subs) == {existing, other}
    assert message.startswith(f"Kept Pleo webhook subscription {existing}")


def test_subscribe_removes_duplicates_pointing_at_our_url(pleo, credential):
    first = pleo.add(url_of(credential))
    second = pleo.add(url_of(credential))
    message = webhooks_subscribe(credential=credential)
    kept = endpoint_of(credential).pleo_subscription_id
    assert kept in (first, second)
    assert set(pleo.subs) == {kept}
    assert "removed duplicate subscription" in message


def test_subscribe_reactivates_an_inactive_subscription(pleo, credential):
    sub_id = pleo.add(url_of(credential), status="INACTIVE", event_types=["v1.vendor.created"])
    message = webhooks_subscribe(credential=credential)
    assert message.startswith("Updated")
    assert pleo.subs[sub_id]["status"] == "ACTIVE"
    assert EVENT in pleo.subs[sub_id]["eventTypes"]
    assert "v1.vendor.created" in pleo.subs[sub_id]["eventTypes"]
    assert endpoint_of(credential).subscription_status == "ACTIVE"


def test_subscribe_points_the_stored_subscription_at_our_current_url(pleo, credential):
    sub_id = pleo.add("https://old-host.example.com/webhooks/pleo/x/")
    endpoint = endpoint_of(credential)
    endpoint.pleo_subscription_id = sub_id
    endpoint.save()
    webhooks_subscribe(credential=credential)
    assert pleo.subs[sub_id]["endpointUrl"] == url_of(credential)
    assert pleo.count("POST") == 0


def test_subscribe_when_the_stored_subscription_is_gone(pleo, credential):
    endpoint = endpoint_of(credential)
    old_secret = new_secret()
    webhook_endpoint_add_secret(endpoint=endpoint, secret=old_secret, subscription_id="gone")
    endpoint.pleo_subscription_id = str(uuid.uuid4())
    endpoint.save()
    message = webhooks_subscribe(credential=credential, overlap=timedelta(hours=2))
    assert "was gone" in message
    (new_id,) = pleo.subs
    endpoint = endpoint_of(credential)
    assert endpoint.pleo_subscription_id == new_id
    old, new = endpoint.secret_entries()
    assert old["secret"] == old_secret and old["retire_after"] is not None
    assert new["subscription_id"] == new_id and new["retire_after"] is None
    clock.advance(2 * 3600 + 1)
    assert webhook_secrets_active(endpoint=endpoint) == [pleo.secrets[new_id]]


@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, "Subscribing to Pleo webhooks failed: 401"), (500, "may or may not")],
)
def test_subscribe_failure_raises_a_clear_error(fast_client, credential, status, expected):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        page = {"currentRequestPagination": {"parameters": {}}}
        page.update(hasNextPage=False, hasPreviousPage=False)
        rsps.get(f"{BASE}/v1/subscriptions", json={"data": [], "pagination": page})
        rsps.post(f"{BASE}/v1/subscriptions", status=status, json={"type": "X", "message": "no"})
        with pytest.raises(SubscriptionError, match=expected):
            webhooks_subscribe(credential=credential)
    endpoint = endpoint_of(credential)
    assert endpoint.pleo_subscription_id == "" and endpoint.secret_entries() == []


def test_subscribe_with_an_unusable_credential(pleo, credential):
    Credential.objects.filter(pk=credential.pk).update(status=Credential.Status.INVALID)
    credential.refresh_from_db()
    with pytest.raises(SubscriptionError, match="invalid"):
        webhooks_subscribe(credential=credential)
    assert pleo.calls == []


def test_subscribe_unreachable_pleo(fast_client, credential):
    with responses.RequestsMock() as rsps:
        import requests

        rsps.get(
            re.compile(rf"{BASE}/.*"), body=requests.exceptions.ConnectTimeout("connect timeout")
        )
        with pytest.raises(SubscriptionError, match="unreachable"):
            webhooks_subscribe(credential=credential)


# --- Unsubscribe ----------------------------------------------------------------------------------


def test_unsubscribe_deletes_and_clears(pleo, credential):
    webhooks_subscribe(credential=credential)
    sub_id = endpoint_of(credential).pleo_subscription_id
    message = webhooks_unsubscribe(credential=credential)
    assert pleo.subs == {}
    assert message == f"Deleted Pleo webhook subscription {sub_id} for {url_of(credential)}."
    endpoint = endpoint_of(credential)
    assert endpoint.pleo_subscription_id == "" and endpoint.subscription_status == ""
    (entry,) = endpoint.secret_entries()
    assert entry["retire_after"] is not None


def test_unsubscribe_when_already_gone_is_fine(pleo, credential):
    endpoint = endpoint_of(credential)
    endpoint.pleo_subscription_id = str(uuid.uuid4())
    endpoint.save()
    message = webhooks_unsubscribe(credential=credential)
    assert "nothing to delete" in message
    assert endpoint_of(credential).pleo_subscription_id == ""
    assert pleo.count("DELETE") == 1


def test_unsubscribe_also_removes_strays_pointing_at_our_url(pleo, credential):
    stray = pleo.add(url_of(credential))
    other = pleo.add("https://elsewhere.example.com/hook")
    webhooks_unsubscribe(credential=credential)
    assert set(pleo.subs) == {other}
    assert stray not in pleo.subs


def test_unsubscribe_failure(fast_client, credential):
    endpoint = endpoint_of(credential)
    sub_id = str(uuid.uuid4())
    endpoint.pleo_subscription_id = sub_id
    endpoint.save()
    with responses.RequestsMock() as rsps:
        page = {"currentRequestPagination": {"parameters": {}}}
        page.update(hasNextPage=False, hasPreviousPage=False)
        rsps.get(f"{BASE}/v1/subscriptions", json={"data": [], "pagination": page})
        rsps.delete(f"{BASE}/v1/subscriptions/{sub_id}", status=403, json={"message": "nope"})
        with pytest.raises(SubscriptionError, match="Unsubscribing from Pleo webhooks failed"):
            webhooks_unsubscribe(credential=credential)
    assert endpoint_of(credential).pleo_subscription_id == sub_id


# --- Rotation and pruning ------------------------------------------------------------------------


def test_rotation_keeps_both_secrets_until_the_overlap_ends(pleo, credential):
    webhooks_subscribe(credential=credential)
    old_id = endpoint_of(credential).pleo_subscription_id
    old_secret = pleo.secrets[old_id]
    stored_at_delete = []
    pleo.on_delete = lambda sub_id: stored_at_delete.append(
        webhook_secrets_active(endpoint=endpoint_of(credential))
    )

    message = webhook_secret_rotate(credential=credential, overlap=timedelta(hours=24))

    (new_id,) = pleo.subs
    assert new_id != old_id
    new_secret_value = pleo.secrets[new_id]
    # The new secret was stored before the old subscription was deleted: nothing is rejected.
    assert stored_at_delete == [[old_secret, new_secret_value]]
    endpoint = endpoint_of(credential)
    assert endpoint.pleo_subscription_id == new_id
    old, new = endpoint.secret_entries()
    retire = datetime.fromisoformat(old["retire_after"])
    assert abs((retire - clock.now()) - timedelta(hours=24)) < timedelta(seconds=5)
    assert new["retire_after"] is None
    assert webhook_secrets_active(endpoint=endpoint) == [old_secret, new_secret_value]
    assert f"old subscription {old_id} deleted" in message and "24 h" in message
    assert_no_secret_in(message)

    clock.advance(24 * 3600 + 1)
    assert webhook_secrets_active(endpoint=endpoint) == [new_secret_value]
    assert (
        webhook_secrets_prune(endpoint=endpoint) == "Removed 1 retired webhook secret(s); 1 kept."
    )
    assert [e["secret"] for e in endpoint_of(credential).secret_entries()] == [new_secret_value]


def test_rotation_needs_a_subscription(pleo, credential):
    with pytest.raises(SubscriptionError, match="subscribe first"):
        webhook_secret_rotate(credential=credential)
    assert pleo.calls == []


def test_rotation_when_the_secret_cannot_be_fetched(pleo, credential):
    webhooks_subscribe(credential=credential)
    before = endpoint_of(credential)
    old_id = before.pleo_subscription_id

    pleo.secret_fails = lambda sub_id: sub_id != old_id
    with pytest.raises(SubscriptionError, match="old secret is still in use") as caught:
        webhook_secret_rotate(credential=credential)
    assert "was deleted again" in str(caught.value)
    assert set(pleo.subs) == {old_id}
    after = endpoint_of(credential)
    assert after.pleo_subscription_id == old_id
    assert after.secret_entries() == before.secret_entries()


def test_rotation_when_the_old_subscription_cannot_be_deleted(pleo, credential):
    webhooks_subscribe(credential=credential)
    old_id = endpoint_of(credential).pleo_subscription_id

    pleo.on_delete = lambda sub_id: 502 if sub_id == old_id else None
    with pytest.raises(SubscriptionError, match="run subscribe to remove it"):
        webhook_secret_rotate(credential=credential)
    endpoint = endpoint_of(credential)
    new_id = endpoint.pleo_subscription_id
    assert new_id != old_id
    assert len(webhook_secrets_active(endpoint=endpoint)) == 2
    # Subscribe tidies up: the old subscription goes, the new one stays.
    pleo.on_delete = None
    webhooks_subscribe(credential=credential)
    assert set(pleo.subs) == {new_id}


def test_prune_keeps_current_and_future_secrets(db, credential):
    endpoint = endpoint_of(credential)
    now = clock.now()
    keep_none, keep_future, drop = new_secret(), new_secret(), new_secret()
    endpoint.set_secret_entries(
        [
            {"secret": drop, "retire_after": (now - timedelta(seconds=1)).isoformat()},
            {"secret": keep_future, "retire_after": (now + timedelta(hours=1)).isoformat()},
            {"secret": keep_none, "retire_after": None},
        ]
    )
    endpoint.save()
    assert (
        webhook_secrets_prune(endpoint=endpoint) == "Removed 1 retired webhook secret(s); 2 kept."
    )
    secrets_left = [e["secret"] for e in endpoint_of(credential).secret_entries()]
    assert secrets_left == [keep_future, keep_none]
    assert (
        webhook_secrets_prune(endpoint=endpoint) == "Removed 0 retired webhook secret(s); 2 kept."
    )


# --- Against the sandbox, over real HTTP --------------------------------------------------------


@pytest.fixture
def sandboxed(pleo_sandbox, fast_client, db):
    """A sandbox company with an API key, mirrored as our company and credential."""
    _remote, _key, company = make_sandbox_company_and_key(pleo_sandbox, remote_name="Sandbox Acme")
    return pleo_sandbox, company


def sandbox_subscriptions(sandbox):
    return sandbox.state.subscriptions()


def register_endpoint_secrets(credential):
    for entry in endpoint_of(credential).secret_entries():
        secrets_registry.register(entry["secret"])


def test_sandbox_subscribe_resubscribe_unsubscribe(sandboxed):
    sandbox, company = sandboxed
    credential = company.credential
    webhooks_subscribe(credential=credential)
    register_endpoint_secrets(credential)
    (sub,) = sandbox_subscriptions(sandbox)
    assert sub["endpointUrl"] == url_of(credential)
    assert sub["eventTypes"] == [EVENT] and sub["status"] == "ACTIVE"
    assert endpoint_of(credential).pleo_subscription_id == sub["id"]

    assert webhooks_subscribe(credential=credential).startswith("Kept")
    assert [s["id"] for s in sandbox_subscriptions(sandbox)] == [sub["id"]]
    assert len(endpoint_of(credential).secret_entries()) == 1

    assert webhooks_unsubscribe(credential=credential).startswith("Deleted")
    assert sandbox_subscriptions(sandbox) == []
    assert endpoint_of(credential).pleo_subscription_id == ""
    assert webhooks_unsubscribe(credential=credential).startswith("No Pleo webhook subscription")


def test_sandbox_lost_create_answer_then_subscribe_again_makes_no_duplicate(sandboxed):
    sandbox, company = sandboxed
    credential = company.credential
    sandbox.state.add_fault("apply_then_drop", "POST", "/v1/subscriptions")
    with pytest.raises(SubscriptionError, match="may or may not"):
        webhooks_subscribe(credential=credential)
    assert len(sandbox_subscriptions(sandbox)) == 1  # Pleo did create it
    message = webhooks_subscribe(credential=credential)
    register_endpoint_secrets(credential)
    assert message.startswith("Kept")
    (sub,) = sandbox_subscriptions(sandbox)
    assert endpoint_of(credential).pleo_subscription_id == sub["id"]


def test_sandbox_rotation(sandboxed):
    sandbox, company = sandboxed
    credential = company.credential
    webhooks_subscribe(credential=credential)
    old_id = endpoint_of(credential).pleo_subscription_id
    webhook_secret_rotate(credential=credential, overlap=timedelta(hours=1))
    register_endpoint_secrets(credential)
    (sub,) = sandbox_subscriptions(sandbox)
    assert sub["id"] != old_id
    endpoint = endpoint_of(credential)
    assert endpoint.pleo_subscription_id == sub["id"]
    assert [e["subscription_id"] for e in endpoint.secret_entries()] == [old_id, sub["id"]]
    assert len(webhook_secrets_active(endpoint=endpoint)) == 2
    clock.advance(3601)
    assert len(webhook_secrets_active(endpoint=endpoint)) == 1
    webhook_secrets_prune(endpoint=endpoint)
    assert [e["subscription_id"] for e in endpoint_of(credential).secret_entries()] == [sub["id"]]


@pytest.mark.django_db(transaction=True)
def test_sandbox_delivery_reaches_our_view_and_is_stored_and_enqueued(
    pleo_sandbox, live_server, settings, fast_client, sent
):
    from exports.models import Company, WebhookDelivery

    settings.PUBLIC_BASE_URL = live_server.url
    state = pleo_sandbox.state
    pleo_company, _key, company = make_sandbox_company_and_key(
        pleo_sandbox, remote_name="Sandbox Acme"
    )
    credential = company.credential
    webhooks_subscribe(credential=credential)
    register_endpoint_secrets(credential)

    job = state.create_job(pleo_company.id, items=1)
    (attempt,) = state.wait_for_deliveries(count=1, timeout=10, jobId=job["id"])
    secrets_registry.register(attempt["signature"])
    assert attempt["outcome"] == "delivered", attempt.get("error") or attempt.get("responseBody")
    assert attempt["url"] == url_of(credential)

    delivery = WebhookDelivery.objects.get(webhook_id=attempt["webhookId"])
    assert delivery.state == WebhookDelivery.State.ENQUEUED
    assert delivery.company_id == company.pk
    assert str(delivery.pleo_job_id) == job["id"]
    assert delivery.body == attempt["body"]
    assert [args[:4] for args in sent] == [
        ("exports.tasks.run_company_check", company.pk, "webhook", False)
    ]
    assert Company.objects.get(pk=company.pk).check_queued_at is not None

    # After a rotation the new subscription's deliveries verify too.
    webhook_secret_rotate(credential=credential)
    register_endpoint_secrets(credential)
    Company.objects.filter(pk=company.pk).update(check_queued_at=None)
    job2 = state.create_job(pleo_company.id, items=1)
    (attempt2,) = state.wait_for_deliveries(count=1, timeout=10, jobId=job2["id"])
    secrets_registry.register(attempt2["signature"])
    assert attempt2["outcome"] == "delivered"
    assert attempt2["subscriptionId"] == endpoint_of(credential).pleo_subscription_id
    assert WebhookDelivery.objects.filter(pleo_job_id=job2["id"]).get().state == "enqueued"
    assert len(sent) == 2
