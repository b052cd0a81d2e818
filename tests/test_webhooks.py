"""The webhook view and the delivery services, with payloads signed for real and a CSRF-enforcing
client. Enqueueing is observed at ``exports.services.dispatch.async_task`` and on
``Company.check_queued_at``."""

import base64
import json
import math
import secrets
import time
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import AsyncClient, Client
from django.test.client import FakePayload
from django.test.utils import CaptureQueriesContext

from exports import clock, webhook_views
from exports.models import Company, Trigger, WebhookDelivery
from exports.services import dispatch as webhook_dispatch
from exports.services import webhooks as webhook_services
from exports.services.companies import webhook_endpoint_add_secret
from exports.services.dispatch import TASK, queued_marker_ttl
from exports.services.webhooks import WebhookReprocessError, webhook_delivery_reprocess
from exports.webhook_signing import sign
from tests import secrets_registry
from tests.factories import make_company

State = WebhookDelivery.State
BODY_MARKER = "BODY-MARKER-never-in-logs"


def new_secret() -> str:
    return secrets_registry.register("whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())


def job_event(company, *, event_type="v1.export-job.created", job_id=None, **extra) -> bytes:
    payload = {
        "data": {
            "companyId": str(company.pleo_company_id) if company else str(uuid.uuid4()),
            "createdAt": "2025-05-23T15:21:32Z",
            "expiresIn": 3600,
            "id": str(job_id or uuid.uuid4()),
            "numberOfItems": 1,
            "status": "pending",
            "note": BODY_MARKER,
        },
        "eventId": str(uuid.uuid4()),
        "eventType": event_type,
        **extra,
    }
    return json.dumps(payload).encode()


class Hook:
    """One company, its endpoint with one secret, and a CSRF-enforcing client."""

    def __init__(self):
        self.company = make_company(name="Acme")
        self.endpoint = self.company.credential.webhook_endpoint
        self.secret = new_secret()
        webhook_endpoint_add_secret(endpoint=self.endpoint, secret=self.secret)
        self.client = Client(enforce_csrf_checks=True)

    @property
    def url(self):
        return f"/webhooks/pleo/{self.endpoint.uuid}/"

    def headers(self, body, *, msg_id=None, timestamp=None, secret=None, signature=None):
        msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
        timestamp = str(int(clock.now().timestamp())) if timestamp is None else str(timestamp)
        if signature is None:
            signature = sign(secret or self.secret, msg_id, timestamp, body)
        secrets_registry.register(signature)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": signature,
        }

    def post(self, body=None, *, url=None, headers=None, meta=None, **sign_args):
        """POST ``body`` signed (``sign_args`` for :meth:`headers`); ``meta``: WSGI environ
        entries such as ``CONTENT_LENGTH``."""
        body = job_event(self.company) if body is None else body
        headers = self.headers(body, **sign_args) if headers is None else headers
        return self.client.post(
            url or self.url,
            data=body,
            content_type="application/json",
            headers=headers,
            **(meta or {}),
        )


@pytest.fixture(autouse=True)
def _fresh_counters():
    webhook_views.reset_rejection_counts()


@pytest.fixture
def tasks(monkeypatch):
    """Records every async_task call; set ``tasks.fail = True`` to make the broker refuse."""

    class Recorder(list):
        fail = False

    recorder = Recorder()
    recorder.seen_rows = []

    def fake_async_task(*args, **kwargs):
        assert kwargs.pop("broker", None) is not None  # one broker client a process, passed in
        recorder.seen_rows.append(list(WebhookDelivery.objects.values_list("webhook_id", "state")))
        if recorder.fail:
            raise ConnectionError("broker down")
        recorder.append((args, kwargs))

    monkeypatch.setattr("exports.services.dispatch.async_task", fake_async_task)
    return recorder


@pytest.fixture
def hook(db):
    return Hook()


def only_delivery() -> WebhookDelivery:
    (delivery,) = WebhookDelivery.objects.all()
    return delivery


# --- Valid deliveries -----------------------------------------------------------------------------


def test_valid_delivery_is_stored_and_enqueued(hook, tasks, django_capture_on_commit_callbacks):
    job_id = uuid.uuid4()
    body = job_event(hook.company, job_id=job_id)
    headers = hook.headers(body, msg_id="msg_first")
    with django_capture_on_commit_callbacks(execute=True):
        response = hook.post(body, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "enqueued"}
    delivery = only_delivery()
    assert delivery.webhook_id == "msg_first"
    assert delivery.state == State.ENQUEUED
    assert delivery.company == hook.company
    assert delivery.pleo_job_id == job_id
    assert delivery.event_type == "v1.export-job.created"
    assert delivery.body == body.decode()
    assert int(delivery.webhook_timestamp.timestamp()) == int(headers["webhook-timestamp"])
    assert delivery.error == ""
    hook.company.refresh_from_db()
    assert hook.company.check_queued_at is not None
    assert tasks == [
        (
            # The task carries its marker (the worker records it as the queue's progress).
            (TASK, hook.company.pk, Trigger.WEBHOOK, False, hook.company.check_queued_at),
            {
                "task_name": f"check company {hook.company.pk} (webhook)",
                "group": "company-checks",
                "save": False,  # successes: the company's last check and the audit show them
            },
        )
    ]


@pytest.mark.parametrize(
    "event_type",
    [
        "v1.export-job.created",
        "export-job.created",
        "v1.export.job-created",
        "v2.export-job.created",
    ],
)
def test_every_spelling_of_the_event_is_accepted(
    hook, tasks, django_capture_on_commit_callbacks, event_type
):
    with django_capture_on_commit_callbacks(execute=True):
        response = hook.post(job_event(hook.company, event_type=event_type))
    assert response.status_code == 200
    assert only_delivery().state == State.ENQUEUED
    assert len(tasks) == 1


def test_job_id_that_is_not_a_uuid_is_not_stored(hook, tasks, django_capture_on_commit_callbacks):
    body = json.loads(job_event(hook.company))
    body["data"]["id"] = "not-a-uuid"
    with django_capture_on_commit_callbacks(execute=True):
        assert hook.post(json.dumps(body).encode()).status_code == 200
    assert only_delivery().pleo_job_id is None
    assert len(tasks) == 1


def test_routes_among_the_credentials_companies(hook, tasks, django_capture_on_commit_callbacks):
    sister = make_company(name="Sister", credential=hook.company.credential)
    with django_capture_on_commit_callbacks(execute=True):
        assert hook.post(job_event(sister)).status_code == 200
    assert only_delivery().company == sister
    assert tasks[0][0][1] == sister.pk


def test_two_active_secrets_during_a_rotation_both_verify(
    hook, tasks, django_capture_on_commit_callbacks
):
    new = new_secret()
    webhook_endpoint_add_secret(endpoint=hook.endpoint, secret=new)
    with django_capture_on_commit_callbacks(execute=True):
        assert hook.post(secret=hook.secret).status_code == 200
        assert hook.post(secret=new).status_code == 200
    assert WebhookDelivery.objects.count() == 2


def test_retired_secret_is_rejected_but_the_new_one_verifies(hook, tasks):
    new = new_secret()
    webhook_endpoint_add_secret(endpoint=hook.endpoint, secret=new)
    entries = hook.endpoint.secret_entries()
    entries[0]["retire_after"] = (clock.now() - timedelta(seconds=1)).isoformat()
    hook.endpoint.set_secret_entries(entries)
    hook.endpoint.save()

    response = hook.post(secret=hook.secret)
    assert response.status_code == 401
    assert webhook_views.rejection_counts() == {"signature_mismatch": 1}
    assert hook.post(secret=new).status_code == 200


def test_secret_retiring_later_still_verifies(hook, tasks):
    entries = hook.endpoint.secret_entries()
    entries[0]["retire_after"] = (clock.now() + timedelta(hours=1)).isoformat()
    hook.endpoint.set_secret_entries(entries)
    hook.endpoint.save()
    assert hook.post().status_code == 200
    clock.advance(3601)
    assert hook.post().status_code == 401


# --- Rejections -----------------------------------------------------------------------------------


def assert_rejected(response, status, reason, tasks):
    assert response.status_code == status, response.content
    assert WebhookDelivery.objects.count() == 0
    assert tasks == []
    assert webhook_views.rejection_counts() == {reason: 1}


def test_get_is_405(hook, tasks):
    response = hook.client.get(hook.url)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert webhook_views.rejection_counts() == {"method_not_allowed": 1}


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_other_methods_are_405(hook, tasks, method):
    assert getattr(hook.client, method)(hook.url).status_code == 405


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_each_missing_header_is_400(hook, tasks, missing):
    body = job_event(hook.company)
    headers = hook.headers(body)
    del headers[missing]
    assert_rejected(hook.post(body, headers=headers), 400, "missing_header", tasks)


@pytest.mark.parametrize("blank", ["webhook-id", "webhook-signature"])
def test_blank_header_counts_as_missing(hook, tasks, blank):
    body = job_event(hook.company)
    headers = {**hook.headers(body), blank: "  "}
    assert_rejected(hook.post(body, headers=headers), 400, "missing_header", tasks)


def test_missing_headers_are_checked_before_the_endpoint(hook, tasks):
    response = hook.post(url=f"/webhooks/pleo/{uuid.uuid4()}/", headers={"webhook-id": "msg_1"})
    assert_rejected(response, 400, "missing_header", tasks)


def test_tampered_body_is_401(hook, tasks):
    body = job_event(hook.company)
    headers = hook.headers(body)
    tampered = body.replace(b'"pending"', b'"xending"')
    assert_rejected(hook.post(tampered, headers=headers), 401, "signature_mismatch", tasks)


def test_wrong_secret_is_401(hook, tasks):
    assert_rejected(hook.post(secret=new_secret()), 401, "signature_mismatch", tasks)


@pytest.mark.parametrize(
    ("offset", "reason"), [(-301, "timestamp_too_old"), (301, "timestamp_too_new")]
)
def test_stale_and_future_timestamps_are_401(hook, tasks, offset, reason):
    # Rounded away from now: a timestamp floored to the second and sent a moment later would
    # otherwise be only 300.x s in the future by the time it is checked (a flake under load).
    now = clock.now().timestamp()
    timestamp = (math.ceil(now) if offset > 0 else math.floor(now)) + offset
    assert_rejected(hook.post(timestamp=timestamp), 401, reason, tasks)


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ("garbage", "malformed_signature"),
        ("v1,a,b", "malformed_signature"),
        ("v1,%%%not-base64%%%", "malformed_signature"),
        ("v1,YWJj", "malformed_signature"),
        ("v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "no_v1_signature"),
        ("v1," + "A" * 10_000, "malformed_signature"),
        ("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\u00e9", "malformed_signature"),
    ],
)
def test_malformed_signatures_are_401_not_500(hook, tasks, signature, reason):
    assert_rejected(hook.post(signature=signature), 401, reason, tasks)


@pytest.mark.parametrize("timestamp", ["yesterday", "1.5e9", "-1", "\u0661\u0662"])
def test_non_numeric_timestamp_is_401(hook, tasks, timestamp):
    assert_rejected(hook.post(timestamp=timestamp), 401, "malformed_timestamp", tasks)


def test_non_ascii_webhook_id_is_401(hook, tasks):
    assert_rejected(hook.post(msg_id="msg_\u00e9t\u00e9"), 401, "malformed_id", tasks)


def test_unknown_endpoint_is_404(hook, tasks):
    response = hook.post(url=f"/webhooks/pleo/{uuid.uuid4()}/")
    assert_rejected(response, 404, "unknown_endpoint", tasks)


def test_endpoint_without_secret_is_401(tasks, db):
    company = make_company(name="No secret")
    endpoint = company.credential.webhook_endpoint
    body = job_event(company)
    other = new_secret()
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": secrets_registry.register(
            sign(other, "msg_1", int(time.time()), body)
        ),
    }
    response = Client(enforce_csrf_checks=True).post(
        f"/webhooks/pleo/{endpoint.uuid}/",
        data=body,
        content_type="application/json",
        headers=headers,
    )
    assert_rejected(response, 401, "no_secret", tasks)


def test_oversized_content_length_is_413_before_reading(hook, tasks):
    # FakePayload would fail if the view read past the body.
    response = hook.post(meta={"CONTENT_LENGTH": str(256 * 1024 + 1)})
    assert_rejected(response, 413, "body_too_large", tasks)


def test_oversized_body_is_413(hook, tasks):
    body = job_event(hook.company, padding="x" * (256 * 1024))
    assert_rejected(hook.post(body), 413, "body_too_large", tasks)


def test_body_at_the_limit_is_accepted(hook, tasks, django_capture_on_commit_callbacks):
    pad = 256 * 1024 - len(job_event(hook.company, p=""))
    body = job_event(hook.company, p="x" * pad)
    assert len(body) == 256 * 1024
    with django_capture_on_commit_callbacks(execute=True):
        assert hook.post(body).status_code == 200
    assert len(tasks) == 1


def test_oversized_body_without_content_length_is_413_by_its_read_size(hook, tasks):
    """Under ASGI the body is not cut at Content-Length: a body sent without one is measured."""
    body = job_event(hook.company, padding="x" * (256 * 1024))
    headers = hook.headers(body)
    scope = {
        "method": "POST",
        "path": hook.url,
        "server": ("127.0.0.1", "80"),
        "scheme": "http",
        "query_string": "",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")]
        + [(name.encode(), value.encode()) for name, value in headers.items()],
        "_body_file": FakePayload(body),
    }
    response = async_to_sync(AsyncClient(enforce_csrf_checks=True).request)(**scope)
    assert_rejected(response, 413, "body_too_large", tasks)


def test_bad_content_length_is_400(hook, tasks):
    response = hook.post(meta={"CONTENT_LENGTH": "12abc"})
    assert_rejected(response, 400, "bad_content_length", tasks)


def test_rejections_are_logged_without_body_or_signature(hook, tasks, caplog):
    body = job_event(hook.company)
    headers = hook.headers(body, secret=new_secret())
    hook.post(body, headers=headers)
    hook.post(body[:-2] + b"}}", headers=hook.headers(body))
    rejected = [r for r in caplog.records if r.name == "exports.webhooks"]
    assert [r.levelname for r in rejected] == ["WARNING", "WARNING"]
    assert "signature_mismatch" in caplog.text
    assert BODY_MARKER not in caplog.text
    assert headers["webhook-signature"] not in caplog.text
    assert headers["webhook-signature"].split(",", 1)[1] not in caplog.text
    assert webhook_views.rejection_counts() == {"signature_mismatch": 2}


# --- Stored but ignored ---------------------------------------------------------------------------


def assert_ignored(response, tasks, reason_part):
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ignored"}
    delivery = only_delivery()
    assert delivery.state == State.IGNORED
    assert reason_part in delivery.error
    assert tasks == []
    assert not Company.objects.filter(check_queued_at__isnull=False).exists()
    return delivery


def test_unknown_company_is_stored_ignored(hook, tasks, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = hook.post(job_event(None))
    delivery = assert_ignored(response, tasks, "Unknown company")
    assert delivery.company is None


def test_company_of_another_credential_is_ignored(hook, tasks, django_capture_on_commit_callbacks):
    stranger = make_company(name="Stranger")
    with django_capture_on_commit_callbacks(execute=True):
        response = hook.post(job_event(stranger))
    assert_ignored(response, tasks, "Unknown company")


def test_inactive_company_is_stored_ignored(hook, tasks, django_capture_on_commit_callbacks):
    Company.objects.filter(pk=hook.company.pk).update(active=False)
    with django_capture_on_commit_callbacks(execute=True):
        response = hook.post()
    delivery = assert_ignored(response, tasks, "inactive")
    assert delivery.company == hook.company


def test_unknown_event_type_is_stored_ignored(hook, tasks, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = hook.post(job_event(hook.company, event_type="v1.vendor.created"))
    delivery = assert_ignored(response, tasks, "Unknown event type (v1.vendor.created)")
    assert delivery.event_type == "v1.vendor.created"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json at all", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"eventType": "v1.export-job.created", "data": {"companyId": 7}}', "companyId"),
        (b'{"eventType": "v1.export-job.created"}', "companyId"),
        (b"\xff\xfe{}\x00", "not UTF-8"),
        (b'{"a": "nul \x00 inside"}', "not JSON"),
        (b'{"eventType": "v1.\\u0000x", "data": {}}', "Unknown event type"),
    ],
)
def test_unusable_body_after_a_valid_signature_is_stored_ignored(
    hook, tasks, django_capture_on_commit_callbacks, body, reason
):
    with django_capture_on_commit_callbacks(execute=True):
        response = hook.post(body)
    delivery = assert_ignored(response, tasks, reason)
    assert "\x00" not in delivery.body + delivery.event_type + delivery.error


# --- Duplicates and broker failures ---------------------------------------------------------------


def test_duplicate_delivery_is_enqueued_once(hook, tasks, django_capture_on_commit_callbacks):
    body = job_event(hook.company)
    with django_capture_on_commit_callbacks(execute=True):
        first = hook.post(body, msg_id="msg_dup")
    # A retry: same id and body, fresh timestamp and signature.
    clock.advance(30)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        second = hook.post(body, msg_id="msg_dup")
    assert first.status_code == second.status_code == 200
    assert second.json() == {"status": "duplicate"}
    assert callbacks == []
    assert len(tasks) == 1
    assert only_delivery().state == State.ENQUEUED


def test_new_delivery_while_a_check_is_queued_is_coalesced(hook, tasks):
    """A new delivery while a check of its company is queued is stored; no second task."""
    Company.objects.filter(pk=hook.company.pk).update(check_queued_at=clock.now())
    assert hook.post().status_code == 200
    assert only_delivery().state == State.ENQUEUED
    assert tasks == []


def test_delivery_after_a_lost_queued_check_is_enqueued_again(
    hook, tasks, django_capture_on_commit_callbacks
):
    """A marker older than its lifetime (the queued task was lost) no longer coalesces."""
    lost_at = clock.now() - queued_marker_ttl() - timedelta(seconds=1)
    Company.objects.filter(pk=hook.company.pk).update(check_queued_at=lost_at)
    with django_capture_on_commit_callbacks(execute=True):
        assert hook.post().status_code == 200
    assert len(tasks) == 1
    assert Company.objects.get(pk=hook.company.pk).check_queued_at > lost_at + queued_marker_ttl()


def test_delivery_after_the_queue_moved_past_a_lost_check_is_enqueued_again(
    hook, tasks, django_capture_on_commit_callbacks
):
    """The queue's progress comes with the webhook's one read (plain SQL: SQLite gives text)."""
    lost_at = clock.now() - timedelta(minutes=5)
    Company.objects.filter(pk=hook.company.pk).update(check_queued_at=lost_at)
    other = make_company(name="Picked up later")
    Company.objects.filter(pk=other.pk).update(
        check_picked_queued_at=lost_at + timedelta(minutes=2)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert hook.post().status_code == 200
    assert len(tasks) == 1


def _statements(captured) -> list[str]:
    """The statements a request ran, without the test transaction's savepoints."""
    return [
        query["sql"].split()[0].upper()
        for query in captured.captured_queries
        if "SAVEPOINT" not in query["sql"].upper()
    ]


def test_coalesced_delivery_costs_one_read_and_one_insert(hook, tasks):
    """The hot path (benchmark 2): a check of the company is queued already, so the delivery
    is one joined read (endpoint, secrets, company, marker) and the row's insert."""
    Company.objects.filter(pk=hook.company.pk).update(check_queued_at=clock.now())
    with CaptureQueriesContext(connection) as captured:
        assert hook.post().status_code == 200
    assert _statements(captured) == ["SELECT", "INSERT"]
    assert only_delivery().state == State.ENQUEUED


def test_new_delivery_costs_read_insert_marker_and_task(hook, tasks, monkeypatch):
    """With the ORM broker the task row is written in the delivery's transaction (one write
    transaction: the delivery, the marker, the task)."""
    monkeypatch.setattr(webhook_dispatch, "task_commits_with_transaction", lambda: True)
    with CaptureQueriesContext(connection) as captured:
        assert hook.post().status_code == 200
    # (The fake broker's "insert" is its own SELECT of the deliveries it can see.)
    assert _statements(captured) == ["SELECT", "INSERT", "UPDATE", "SELECT"]
    assert tasks.seen_rows == [[(only_delivery().webhook_id, State.ENQUEUED)]]
    assert len(tasks) == 1


def test_with_another_broker_the_task_is_sent_when_the_delivery_commits(
    hook, tasks, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(webhook_dispatch, "task_commits_with_transaction", lambda: False)
    with CaptureQueriesContext(connection) as captured:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            assert hook.post().status_code == 200
    assert _statements(captured) == ["SELECT", "INSERT", "UPDATE"]
    assert len(callbacks) == 1 and tasks == []


def test_delivery_for_an_unknown_company_reads_the_endpoint_alone(hook, tasks):
    other = uuid.uuid4()
    body = json.dumps(
        {
            "eventType": "v1.export-job.created",
            "data": {"id": str(uuid.uuid4()), "companyId": str(other)},
        }
    ).encode()
    with CaptureQueriesContext(connection) as captured:
        response = hook.post(body)
    assert response.status_code == 200
    assert _statements(captured) == ["SELECT", "SELECT", "INSERT"]
    delivery = only_delivery()
    assert delivery.state == State.IGNORED
    assert str(other) in delivery.error
    assert tasks == []


def test_concurrent_duplicate_falls_back_on_the_unique_constraint(hook, tasks, monkeypatch):
    """The other request stores the same webhook id between our lookup and our insert."""
    real_find = webhook_views.webhook_target_find

    def racing_find(**kwargs):
        target = real_find(**kwargs)
        WebhookDelivery.objects.create(
            endpoint=hook.endpoint,
            webhook_id="msg_race",
            webhook_timestamp=clock.now(),
            body="{}",
            received_at=clock.now(),
            company=hook.company,
            state=State.ENQUEUED,
        )
        return target

    monkeypatch.setattr(webhook_views, "webhook_target_find", racing_find)
    response = hook.post(msg_id="msg_race")
    assert response.status_code == 200
    assert response.json() == {"status": "duplicate"}
    assert WebhookDelivery.objects.count() == 1
    assert tasks == []


def test_stale_received_duplicate_is_enqueued_again(
    hook, tasks, django_capture_on_commit_callbacks
):
    body = job_event(hook.company)
    WebhookDelivery.objects.create(
        endpoint=hook.endpoint,
        webhook_id="msg_crashed",
        webhook_timestamp=clock.now(),
        body=body.decode(),
        received_at=clock.now() - timedelta(minutes=5),
        company=hook.company,
        state=State.RECEIVED,
    )
    fresh = WebhookDelivery.objects.create(
        endpoint=hook.endpoint,
        webhook_id="msg_in_flight",
        webhook_timestamp=clock.now(),
        body=body.decode(),
        received_at=clock.now(),
        company=hook.company,
        state=State.RECEIVED,
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert hook.post(body, msg_id="msg_in_flight").status_code == 200
    assert tasks == []
    with django_capture_on_commit_callbacks(execute=True):
        assert hook.post(body, msg_id="msg_crashed").status_code == 200
    assert len(tasks) == 1
    assert WebhookDelivery.objects.get(webhook_id="msg_crashed").state == State.ENQUEUED
    fresh.refresh_from_db()
    assert fresh.state == State.RECEIVED


@pytest.mark.django_db(transaction=True)
def test_row_is_committed_before_enqueue_and_survives_an_enqueue_failure(tasks, monkeypatch):
    """A broker outside the database (Redis): the row is committed first, then the task sent."""
    monkeypatch.setattr(webhook_dispatch, "task_commits_with_transaction", lambda: False)
    monkeypatch.setattr(webhook_services, "task_commits_with_transaction", lambda: False)
    hook = Hook()
    tasks.fail = True
    body = job_event(hook.company)
    response = hook.post(body, msg_id="msg_fail")
    assert response.status_code == 503
    assert response.json() == {
        "status": "enqueue_failed",
        "detail": "stored; the check could not be queued",
    }
    assert response["Retry-After"] == "60"
    # When async_task ran, the delivery was already stored.
    assert tasks.seen_rows == [[("msg_fail", State.ENQUEUED)]]
    delivery = only_delivery()
    assert delivery.state == State.ENQUEUE_FAILED
    assert "broker down" in delivery.error
    hook.company.refresh_from_db()
    assert hook.company.check_queued_at is None

    # Pleo retries the same webhook id: this time the broker takes it.
    tasks.fail = False
    tasks.seen_rows.clear()
    clock.advance(60)
    retry = hook.post(body, msg_id="msg_fail")
    assert retry.status_code == 200
    assert retry.json() == {"status": "duplicate"}
    assert len(tasks) == 1
    delivery.refresh_from_db()
    assert delivery.state == State.ENQUEUED and delivery.error == ""
    hook.company.refresh_from_db()
    assert hook.company.check_queued_at is not None

    # A further retry is a plain duplicate.
    assert hook.post(body, msg_id="msg_fail").status_code == 200
    assert len(tasks) == 1


@pytest.mark.django_db(transaction=True)
def test_with_the_orm_broker_a_refused_task_rolls_the_delivery_back(tasks, monkeypatch):
    """The ORM broker writes the task in the delivery's transaction: a failure there stores
    nothing (no delivery claiming a check that is not queued), and Pleo's retry is new."""
    monkeypatch.setattr(webhook_dispatch, "task_commits_with_transaction", lambda: True)
    monkeypatch.setattr(webhook_services, "task_commits_with_transaction", lambda: True)
    hook = Hook()
    tasks.fail = True
    body = job_event(hook.company)
    response = hook.post(body, msg_id="msg_fail")
    assert response.status_code == 503
    assert response.json()["detail"] == "not stored: the check could not be queued; send it again"
    assert response["Retry-After"] == "60"
    assert tasks.seen_rows == [[("msg_fail", State.ENQUEUED)]]  # inside the transaction
    assert WebhookDelivery.objects.count() == 0
    hook.company.refresh_from_db()
    assert hook.company.check_queued_at is None

    tasks.fail = False
    clock.advance(60)
    retry = hook.post(body, msg_id="msg_fail")
    assert retry.status_code == 200
    assert retry.json() == {"status": "enqueued"}
    assert len(tasks) == 1
    assert only_delivery().state == State.ENQUEUED


@pytest.mark.django_db(transaction=True)
def test_valid_delivery_is_enqueued_with_its_row_visible_over_the_real_transaction(tasks):
    hook = Hook()
    response = hook.post(msg_id="msg_live")
    assert response.status_code == 200
    assert tasks.seen_rows == [[("msg_live", State.ENQUEUED)]]
    assert len(tasks) == 1


# --- Reprocess ------------------------------------------------------------------------------------


def make_delivery(hook, state, *, company=True):
    return WebhookDelivery.objects.create(
        endpoint=hook.endpoint,
        webhook_id=f"msg_{uuid.uuid4().hex}",
        webhook_timestamp=clock.now(),
        body="{}",
        received_at=clock.now(),
        company=hook.company if company else None,
        state=state,
        error="earlier failure",
    )


@pytest.mark.parametrize("state", [State.ENQUEUE_FAILED, State.FAILED])
def test_reprocess_enqueues_the_company_again(
    hook, tasks, state, django_capture_on_commit_callbacks
):
    delivery = make_delivery(hook, state)
    with django_capture_on_commit_callbacks(execute=True):
        message = webhook_delivery_reprocess(delivery=delivery)
    assert "queued" in message and "Acme" in message
    assert [call[0][1:3] for call in tasks] == [(hook.company.pk, Trigger.MANUAL)]
    delivery.refresh_from_db()
    assert delivery.state == State.ENQUEUED and delivery.error == ""


@pytest.mark.parametrize("state", [State.ENQUEUED, State.IGNORED, State.RECEIVED, State.PROCESSED])
def test_reprocess_refuses_other_states(hook, tasks, state):
    delivery = make_delivery(hook, state)
    with pytest.raises(WebhookReprocessError, match="only failed"):
        webhook_delivery_reprocess(delivery=delivery)
    assert tasks == []


def test_reprocess_without_company_or_with_inactive_company(hook, tasks):
    with pytest.raises(WebhookReprocessError, match="not linked"):
        webhook_delivery_reprocess(delivery=make_delivery(hook, State.FAILED, company=False))
    Company.objects.filter(pk=hook.company.pk).update(active=False)
    with pytest.raises(WebhookReprocessError, match="inactive"):
        webhook_delivery_reprocess(delivery=make_delivery(hook, State.FAILED))
    assert tasks == []


@pytest.mark.django_db(transaction=True)
def test_reprocess_reports_a_broker_failure(tasks):
    hook = Hook()
    tasks.fail = True
    delivery = make_delivery(hook, State.ENQUEUE_FAILED)
    with pytest.raises(WebhookReprocessError, match="could not be queued"):
        webhook_delivery_reprocess(delivery=delivery)
    delivery.refresh_from_db()
    assert delivery.state == State.ENQUEUE_FAILED
    assert "broker down" in delivery.error
