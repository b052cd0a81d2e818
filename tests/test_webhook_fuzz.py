"""Bad input at the webhook door: generated requests never produce a 5xx or an ERROR log record,
and never enqueue work unless their signature verifies (reliability suite, "Bad input").
Bodies include deep nesting, lone surrogates (as JSON escapes and encoded), invalid UTF-8,
BOMs, UTF-16/32, NUL bytes, odd Content-Types and encodings, sent with a Content-Length or
chunked. Signed hostile bodies are stored (ignored, with a reason) on either database.

``bin/test`` runs a bounded number of examples; ``--run-slow`` (``.ci/run``) runs many more.
"""

import base64
import io
import json
import logging
import secrets
import time
import uuid

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from exports.models import Company, WebhookDelivery
from exports.services.companies import webhook_endpoint_add_secret
from exports.webhook_signing import sign
from tests import secrets_registry
from tests.factories import make_company

pytestmark = pytest.mark.django_db

HEADER_TEXT = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        ["", "garbage", "v1,a,b", "v1,!!!", "v1,", "v2,abc", "v1 ,x", "\x00", "é" * 10]
    ),
    st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()).map(lambda s: f"v1,{s}"),
)
TIMESTAMPS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63).map(str),
    st.just(str(int(time.time()))),
    st.text(max_size=20),
)
BODIES = st.one_of(
    st.binary(max_size=2048),
    st.text(max_size=512).map(str.encode),
    st.builds(
        lambda d: json.dumps(d).encode(),
        st.dictionaries(st.text(max_size=10), st.text(max_size=10)),
    ),
)

# --- Hostile bodies -------------------------------------------------------------------------------

LIMIT = 256 * 1024
COMPANY_ID = "6f1c2f0e-5b8a-4c1e-9a53-2d7f4c0b9e11"  # the door's company
PLACEHOLDER = "@@FUZZ@@"
EVENT_TYPES = ["v1.export-job.created", "export-job.created", "v1.vendor.created"]


def _event(company_id: str, **overrides) -> dict:
    event = {
        "eventType": "v1.export-job.created",
        "eventId": str(uuid.uuid4()),
        "data": {"companyId": company_id, "id": str(uuid.uuid4()), "status": "pending"},
    }
    for path, value in overrides.items():
        *parents, leaf = path.split(".")
        target = event
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return event


def _nested(depth: int, opener: bytes, closer: bytes, closed: bool) -> bytes:
    depth = max(1, min(depth, (LIMIT - 64) // (len(opener) + len(closer))))
    return opener * depth + (b"1" + closer * depth if closed else b"")


NESTED = st.builds(
    _nested,
    depth=st.one_of(st.integers(1, 40), st.integers(900, 1100), st.integers(1100, 60_000)),
    opener=st.sampled_from(
        [b'{"a":', b"[", b'{"eventType":"v1.export-job.created","data":', b'{"data":{"id":[']
    ),
    closer=st.sampled_from([b"}", b"]", b"}]"]),
    closed=st.booleans(),
)
# JSON escapes that decode to what a database or an encoder refuses: lone surrogates (high, low,
# reversed pair), NUL, a BOM, and a valid pair for contrast.
ESCAPES = st.lists(
    st.sampled_from(
        ["\\ud800", "\\udfff", "\\udc00\\ud800", "\\u0000", "\\ufeff", "\\ud83d\\ude00", "x"]
    ),
    min_size=1,
    max_size=8,
).map("".join)
FIELDS = st.sampled_from(["eventType", "data.companyId", "data.id", "data.status", "eventId"])


@st.composite
def escaped_events(draw, company_id: str) -> bytes:
    """A real event with one field (or a key) holding escapes no database stores as they are."""
    escapes = draw(ESCAPES)
    field = draw(FIELDS)
    text = json.dumps(_event(company_id, **{field: PLACEHOLDER}))
    if draw(st.booleans()):
        text = text.replace('"status"', f'"{PLACEHOLDER}"')  # in a key, too
    return text.replace(PLACEHOLDER, escapes).encode()


# Raw bytes spliced into a body: invalid UTF-8, encoded surrogates, overlong NUL, NUL, BOMs.
SPLICES = st.one_of(
    st.sampled_from(
        [
            b"\xff",
            b"\x80",
            b"\xed\xa0\x80",
            b"\xc0\x80",
            b"\x00",
            b"\xef\xbb\xbf",
            b"\xff\xfe",
            b"\xfe\xff",
        ]
    ),
    st.binary(min_size=1, max_size=6),
)


@st.composite
def spliced_events(draw, company_id: str) -> bytes:
    body = json.dumps(_event(company_id)).encode()
    at = draw(st.integers(0, len(body)))
    return body[:at] + draw(SPLICES) + body[at:]


@st.composite
def encoded_events(draw, company_id: str) -> bytes:
    """A real event, with a non-ASCII note, in another encoding (BOM or not)."""
    event = _event(company_id, **{"data.note": draw(st.text(min_size=1, max_size=20))})
    encoding = draw(
        st.sampled_from(["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1"])
    )
    return json.dumps(event, ensure_ascii=False).encode(encoding, errors="replace")


def hostile_bodies(company_id: str):
    return st.one_of(
        NESTED,
        escaped_events(company_id),
        spliced_events(company_id),
        encoded_events(company_id),
        BODIES,
    )


CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-16",
        "application/json; charset=no-such-codec",
        "text/plain; charset=latin-1",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "multipart/form-data",
        "application/json;;;charset=",
        "",
    ]
)
CONTENT_ENCODINGS = st.sampled_from([None, "gzip", "br", "identity, gzip", "x-unknown"])
FRAMINGS = st.sampled_from(["content-length", "chunked", "chunked-unterminated"])


def _framing_environ(framing: str, body: bytes, content_encoding: str | None) -> dict:
    """Environ keys for how the body arrives: with a Content-Length (the test client's way), or
    chunked, as gunicorn passes it (no Content-Length, the input ended) or runserver would."""
    environ = {}
    if content_encoding is not None:
        environ["HTTP_CONTENT_ENCODING"] = content_encoding
    if framing != "content-length":
        environ.update(
            {
                "CONTENT_LENGTH": "",
                "HTTP_TRANSFER_ENCODING": "chunked",
                "wsgi.input": io.BytesIO(body),
            }
        )
        if framing == "chunked":
            environ["wsgi.input_terminated"] = True
    return environ


def _assert_no_error_logged(caplog):
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [f"{r.name}: {r.getMessage()[:200]}" for r in errors]


def _fuzz_settings(examples: int):
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.fixture
def door(sent):
    company = make_company(pleo_company_id=uuid.UUID(COMPANY_ID))
    endpoint = company.credential.webhook_endpoint
    secret = secrets_registry.register(
        "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    )
    webhook_endpoint_add_secret(endpoint=endpoint, secret=secret)
    return {
        "client": Client(enforce_csrf_checks=True),
        "url": f"/webhooks/pleo/{endpoint.uuid}/",
        "secret": secret,
        "company": company,
        "enqueued": sent,
    }


def _headers(msg_id, timestamp, signature):
    headers = {}
    for name, value in (
        ("webhook-id", msg_id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", signature),
    ):
        if value is not None:
            headers[f"HTTP_{name.upper().replace('-', '_')}"] = value
    return headers


def _unverified_test(examples: int):
    @_fuzz_settings(examples)
    @given(
        msg_id=st.one_of(st.none(), HEADER_TEXT),
        timestamp=st.one_of(st.none(), TIMESTAMPS),
        signature=st.one_of(st.none(), HEADER_TEXT),
        body=hostile_bodies(COMPANY_ID),
        content_type=CONTENT_TYPES,
        content_encoding=CONTENT_ENCODINGS,
        framing=FRAMINGS,
        method=st.sampled_from(["post", "post", "post", "get", "put", "delete"]),
    )
    def test(
        door,
        caplog,
        msg_id,
        timestamp,
        signature,
        body,
        content_type,
        content_encoding,
        framing,
        method,
    ):
        before = WebhookDelivery.objects.count()
        call = getattr(door["client"], method)
        kwargs = {}
        if method != "get":
            # The client would re-encode the body for a charset: the type goes in as it is.
            kwargs = {"data": body, "content_type": "application/octet-stream"}
            kwargs.update(CONTENT_TYPE=content_type, **_framing_environ(framing, body, None))
        if content_encoding is not None:
            kwargs["HTTP_CONTENT_ENCODING"] = content_encoding
        try:
            response = call(door["url"], **kwargs, **_headers(msg_id, timestamp, signature))
        except ValueError:
            reject()  # the test client itself refused a header value (a newline, say)
        assert 400 <= response.status_code < 500, response.content
        assert door["enqueued"] == []
        assert WebhookDelivery.objects.count() == before
        _assert_no_error_logged(caplog)

    return test


def _signed_hostile_test(examples: int):
    @_fuzz_settings(examples)
    @given(
        body=hostile_bodies(COMPANY_ID),
        content_type=CONTENT_TYPES,
        content_encoding=CONTENT_ENCODINGS,
        framing=st.sampled_from(["content-length", "chunked"]),
    )
    def test(door, caplog, body, content_type, content_encoding, framing):
        """Signed, whatever the body: stored (ignored with its reason, unless it is a routable
        export-job event after all), on either database; never a 5xx, never an ERROR."""
        msg_id = f"msg_{uuid.uuid4().hex}"
        timestamp = str(int(time.time()))
        signature = secrets_registry.register(sign(door["secret"], msg_id, timestamp, body))
        Company.objects.filter(pk=door["company"].pk).update(check_queued_at=None)
        response = door["client"].post(
            door["url"],
            data=body,
            content_type="application/octet-stream",
            CONTENT_TYPE=content_type,
            **_framing_environ(framing, body, content_encoding),
            **_headers(msg_id, timestamp, signature),
        )
        assert response.status_code == 200, response.content
        delivery = WebhookDelivery.objects.get(webhook_id=msg_id)
        if delivery.state == WebhookDelivery.State.IGNORED:
            assert delivery.error
        else:
            assert delivery.state == WebhookDelivery.State.ENQUEUED
            assert delivery.company_id == door["company"].pk
        assert "\x00" not in delivery.body + delivery.event_type + delivery.error
        _assert_no_error_logged(caplog)

    return test


test_unverified_requests_never_5xx_and_never_enqueue = _unverified_test(150)
test_signed_hostile_bodies_are_stored_never_5xx = _signed_hostile_test(100)
test_unverified_requests_many_examples = pytest.mark.slow(_unverified_test(1000))
test_signed_hostile_bodies_many_examples = pytest.mark.slow(_signed_hostile_test(500))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES, unknown_company=st.booleans())
def test_verified_requests_with_any_body_never_5xx(
    door, body, unknown_company, django_capture_on_commit_callbacks
):
    """A verified delivery is stored; only a routable export-job event enqueues."""
    if not unknown_company:
        body = json.dumps(
            {
                "eventType": "v1.export-job.created",
                "eventId": str(uuid.uuid4()),
                "data": {
                    "companyId": str(door["company"].pleo_company_id),
                    "id": str(uuid.uuid4()),
                },
            }
        ).encode()
    msg_id = f"msg_{uuid.uuid4().hex}"
    timestamp = str(int(time.time()))
    signature = secrets_registry.register(sign(door["secret"], msg_id, timestamp, body))
    Company.objects.filter(pk=door["company"].pk).update(check_queued_at=None)
    door["enqueued"].clear()
    response = door["client"].post(
        door["url"],
        data=body,
        content_type="application/json",
        **_headers(msg_id, timestamp, signature),
    )
    assert response.status_code == 200
    assert WebhookDelivery.objects.filter(webhook_id=msg_id).exists()
    # The enqueue decision is the company's queued marker (the task itself is sent on commit).
    marked = Company.objects.get(pk=door["company"].pk).check_queued_at is not None
    assert marked is (not unknown_company)
