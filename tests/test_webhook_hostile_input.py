"""Hostile or broken request content at the webhook door, chunked bodies included: whatever a
request holds, signed or not, the answer is never a 5xx and nothing is logged at ERROR. Faults on
our side (unreadable signing secrets, the database or the broker down) answer 503 with
``Retry-After``, so Pleo sends the delivery again.

The view tests' fixtures (``hook``, the ``tasks`` recorder) and helpers come from
``tests/fixtures/webhooks.py``.
"""

import io
import json
import logging
import uuid

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from exports import webhook_views
from exports.models import WebhookDelivery
from tests.fixtures.webhooks import assert_ignored, job_event, only_delivery

State = WebhookDelivery.State
LIMIT = webhook_views.MAX_BODY_BYTES
ANY_HEADERS = {"webhook-id": "x", "webhook-timestamp": "1", "webhook-signature": "y"}


@pytest.fixture(autouse=True)
def no_error_logged(caplog):
    """Request content never makes an ERROR record (a test of our own faults says otherwise)."""
    yield caplog
    if getattr(caplog, "errors_expected", False):
        return
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [f"{r.name}: {r.getMessage()}" for r in errors]


def nested(depth: int, *, opener=b'{"a":', closer=b"}", closed=True) -> bytes:
    return opener * depth + (b"1" + closer * depth if closed else b"")


def signed_ignored(hook, tasks, body, reason_part):
    assert_ignored(hook.post(body), tasks, reason_part)
    return only_delivery()


# --- Before verification: a body that cannot be parsed names no company ---------------------------


@pytest.mark.parametrize("real_endpoint", [True, False])
@pytest.mark.parametrize(
    "body",
    [
        nested(2000, closed=False),
        nested(2000),
        nested(100_000, opener=b"[", closer=b"]", closed=False),
        b'{"eventType": "\\ud800", "data": {"companyId": "\\udfff"}}',
    ],
    ids=["2000-open-objects", "2000-closed-objects", "100k-open-arrays", "lone-surrogates"],
)
def test_unsigned_hostile_body_is_a_4xx_routed_by_the_endpoint_alone(
    hook, tasks, body, real_endpoint
):
    url = hook.url if real_endpoint else f"/webhooks/pleo/{uuid.uuid4()}/"
    with CaptureQueriesContext(connection) as captured:
        response = hook.client.post(
            url, data=body, content_type="application/json", headers=ANY_HEADERS
        )
    assert response.status_code == (401 if real_endpoint else 404), response.content
    # The body named no company: one read of the endpoint, nothing written.
    assert len(captured) == 1 and "pleo_company_id" not in captured[0]["sql"]
    assert WebhookDelivery.objects.count() == 0 and tasks == []


# --- After verification: stored as ignored, with the reason, never a 5xx -------------------------


@pytest.mark.parametrize(
    "body",
    [nested(2000), nested(2000, closed=False), nested(50_000, opener=b"[", closer=b"]")],
    ids=["2000-objects", "2000-open-objects", "50k-arrays"],
)
def test_signed_deeply_nested_body_is_stored_ignored(hook, tasks, body):
    delivery = signed_ignored(hook, tasks, body, "nested too deeply")
    assert delivery.body == body.decode()


def test_signed_export_event_nested_deep_inside_is_still_routed(hook, tasks):
    """A depth the parser handles (a few hundred levels) does not stop a real event."""
    payload = json.loads(job_event(hook.company))
    payload["extra"] = json.loads(nested(200))
    response = hook.post(json.dumps(payload).encode())
    assert response.status_code == 200 and response.json() == {"status": "enqueued"}


@pytest.mark.parametrize(
    ("event_type", "stored"),
    [
        ("\\ud800", "\\ud800"),
        ("\\udfff", "\\udfff"),
        ("v1.\\ud800export-job.created", "v1.\\ud800export-job.created"),
        ("\\ud800\\u0000" * 30, ("\\ud800\ufffd" * 30)[:100]),
        ("\\ud83d\\ude00", "\U0001f600"),  # a valid pair is a character, kept as it is
    ],
)
def test_signed_lone_surrogate_event_type_is_stored_escaped(hook, tasks, event_type, stored):
    body = b'{"eventType": "%s", "data": {}}' % event_type.encode()
    delivery = signed_ignored(hook, tasks, body, "Unknown event type")
    assert delivery.event_type == stored
    assert len(delivery.event_type) <= 100
    assert delivery.body == body.decode()


@pytest.mark.parametrize("field", ["companyId", "id"])
def test_signed_lone_surrogate_in_the_data_is_stored_ignored(hook, tasks, field):
    payload = json.loads(job_event(hook.company))
    payload["data"][field] = "@@"
    body = json.dumps(payload).encode().replace(b'"@@"', b'"\\ud800"')
    if field == "companyId":
        signed_ignored(hook, tasks, body, "companyId")
    else:  # a job id that is not a UUID is dropped; the event still routes
        response = hook.post(body)
        assert response.status_code == 200 and response.json() == {"status": "enqueued"}
        assert only_delivery().pleo_job_id is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xef\xbb\xbf" + job_event(None), "not JSON"),  # a UTF-8 BOM
        (json.dumps({"eventType": "x"}).encode("utf-16"), "not UTF-8"),
        (b'{"eventType": "\xed\xa0\x80"}', "not UTF-8"),  # an encoded surrogate
        (b'{"eventType": "v1.export-job.created", "data": {"companyId": "\x00"}}', "not JSON"),
        (b'{"n": ' + b"9" * 5000 + b"}", "not JSON"),  # past int's digit limit
    ],
    ids=["bom", "utf-16", "encoded-surrogate", "raw-nul", "huge-int"],
)
def test_signed_odd_encodings_are_stored_ignored(hook, tasks, body, reason):
    delivery = signed_ignored(hook, tasks, body, reason)
    assert "\x00" not in delivery.body


# --- Reading the body -----------------------------------------------------------------------------


def _chunked_environ(stream, *, terminated=True):
    """What a WSGI server passes for a ``Transfer-Encoding: chunked`` request: no
    Content-Length; gunicorn ends ``wsgi.input`` at the body's end and says so."""
    environ = {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": stream}
    if terminated:
        environ["wsgi.input_terminated"] = True
    return environ


def _post_chunked(hook, stream, *, signed: bytes, terminated=True):
    """POST ``stream`` as a chunked body, with the headers that sign ``signed``."""
    return hook.client.post(
        hook.url,
        content_type="application/json",
        headers=hook.headers(signed),
        **_chunked_environ(stream, terminated=terminated),
    )


def test_chunked_body_on_a_server_that_ends_the_input_is_read(hook, tasks):
    body = job_event(hook.company)
    response = _post_chunked(hook, io.BytesIO(body), signed=body)
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "enqueued"}
    assert only_delivery().body == body.decode()


class EndlessStream:
    """A body that never ends: counts what the view reads."""

    def __init__(self):
        self.read_bytes = 0

    def read(self, size=-1):
        size = 64 * 1024 if size is None or size < 0 else min(size, 64 * 1024)
        self.read_bytes += size
        return b"x" * size

    readline = read  # Django's LimitedStream wraps it (and never calls this)


def test_chunked_body_over_the_limit_is_413_and_read_no_further(hook, tasks):
    stream = EndlessStream()
    response = _post_chunked(hook, stream, signed=b"")
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert stream.read_bytes <= LIMIT + 1
    assert WebhookDelivery.objects.count() == 0


def test_chunked_body_on_a_server_that_does_not_end_the_input_is_411(hook, tasks):
    """runserver (wsgiref) passes no Content-Length and no end of input: refuse it clearly
    rather than read nothing and call the signature wrong."""
    body = job_event(hook.company)
    response = _post_chunked(hook, io.BytesIO(body), signed=body, terminated=False)
    assert response.status_code == 411, response.content
    assert response.json()["error"] == "length_required"
    assert webhook_views.rejection_counts() == {"length_required": 1}


class BrokenStream:
    def __init__(self, exc):
        self.exc = exc

    def read(self, size=-1):
        raise self.exc

    readline = read


class InvalidChunkSize(Exception):
    """Like gunicorn's: its parse errors are not OSErrors."""


@pytest.mark.parametrize(
    "environ",
    [
        {"CONTENT_LENGTH": "100", "wsgi.input": BrokenStream(OSError("connection reset"))},
        _chunked_environ(BrokenStream(InvalidChunkSize(b"zz"))),
        _chunked_environ(BrokenStream(OSError("connection reset"))),
    ],
    ids=["content-length-reset", "chunked-bad-size", "chunked-reset"],
)
def test_a_body_that_cannot_be_read_is_400(hook, tasks, environ):
    response = hook.client.post(
        hook.url, content_type="application/json", headers=ANY_HEADERS, **environ
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "unreadable_body"
    assert WebhookDelivery.objects.count() == 0


# --- Faults on our side: 503 with Retry-After ----------------------------------------------------


def test_unreadable_signing_secrets_are_503_with_retry_after(hook, tasks, no_error_logged):
    no_error_logged.errors_expected = True  # our fault: logged at ERROR, as it should be
    WebhookDelivery.objects.all().delete()
    type(hook.endpoint).objects.filter(pk=hook.endpoint.pk).update(
        signing_secrets_ciphertext="not-a-fernet-token"
    )
    response = hook.post()
    assert response.status_code == 503
    assert response["Retry-After"] == "60"
    assert response.json() == {"error": "temporarily_unavailable"}


def test_database_unavailable_is_503_with_retry_after(hook, tasks, monkeypatch, no_error_logged):
    no_error_logged.errors_expected = True

    def unavailable(*args, **kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(webhook_views, "webhook_target_find", unavailable)
    response = hook.post()
    assert response.status_code == 503
    assert response["Retry-After"] == "60"


def test_a_disallowed_host_is_400_and_logged_as_a_warning(hook, tasks, caplog):
    response = hook.client.post(
        hook.url,
        data=b"{}",
        content_type="application/json",
        headers=ANY_HEADERS,
        HTTP_HOST="evil.example",
    )
    assert response.status_code == 400
    (record,) = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert record.levelno == logging.WARNING
