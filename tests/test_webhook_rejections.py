"""The webhook view's rejections (``exports.webhook_views``): a method, header, signature,
timestamp, endpoint or size it refuses is answered 4xx, stores nothing, enqueues nothing, is counted
by reason and logged without the body or the signature.

The fixtures (``hook``, ``tasks``) and helpers are in ``tests/fixtures/webhooks.py``.
"""

import math
import time
import uuid

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client
from django.test.client import FakePayload

from exports import clock, webhook_views
from exports.models import WebhookDelivery
from exports.webhook_signing import sign
from tests import secrets_registry
from tests.factories import make_company
from tests.fixtures.webhooks import BODY_MARKER, job_event, new_secret

State = WebhookDelivery.State


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
