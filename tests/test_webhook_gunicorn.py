"""The webhook door under gunicorn, as deployed: hostile bodies, and chunked request bodies.

A correctly signed delivery sent with ``Transfer-Encoding: chunked`` (no Content-Length) is read
and stored; a chunked body over the limit is 413; broken chunk framing is 400; hostile bodies are
4xx unsigned and stored as ignored signed. The web process logs no ERROR line for any of it.
One gunicorn process (one sync worker) for the whole module, on the suite's database.
"""

from __future__ import annotations

import base64
import secrets
import socket
import time
import uuid

import pytest
import requests

from exports.models import WebhookDelivery
from exports.services.companies import webhook_endpoint_add_secret
from exports.webhook_signing import sign
from tests import processes, secrets_registry
from tests.factories import make_company
from tests.fixtures.webhooks import job_event

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

State = WebhookDelivery.State
LIMIT = 256 * 1024


@pytest.fixture
def served(product_env, tmp_path):
    company = make_company(name="Chunked")
    endpoint = company.credential.webhook_endpoint
    secret = secrets_registry.register(
        "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    )
    webhook_endpoint_add_secret(endpoint=endpoint, secret=secret)
    port = processes.free_port()
    web = processes.start(processes.gunicorn(port, 1), product_env, tmp_path / "gunicorn.log")
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_http(f"{base}/healthz", timeout=30)
        yield {
            "port": port,
            "url": f"{base}{endpoint.path}",
            "path": endpoint.path,
            "secret": secret,
            "company": company,
            "web": web,
        }
    finally:
        processes.stop(web)


def signed_headers(secret, body):
    msg_id = f"msg_{uuid.uuid4().hex}"
    timestamp = str(int(time.time()))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": secrets_registry.register(sign(secret, msg_id, timestamp, body)),
        "content-type": "application/json",
    }


def in_pieces(body: bytes, size: int = 1000):
    """A generator body: requests sends it chunked, without Content-Length."""
    return (body[i : i + size] for i in range(0, len(body), size))


def raw_request(port: int, path: str, head: dict, payload: bytes) -> bytes:
    """Send bytes as they are (a framing requests would not produce); the status line back."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in head.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_gunicorn_reads_chunked_bodies_and_never_answers_5xx(served):
    secret, company = served["secret"], served["company"]

    # A signed delivery, chunked: read whole, verified, stored and queued.
    body = job_event(company)
    headers = signed_headers(secret, body)
    response = requests.post(served["url"], data=in_pieces(body), headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "enqueued"}
    delivery = WebhookDelivery.objects.get(webhook_id=headers["webhook-id"])
    assert delivery.body == body.decode() and delivery.state == State.ENQUEUED

    # Chunked past the limit: 413, whatever the chunks say.
    big = job_event(company, padding="x" * LIMIT)
    response = requests.post(
        served["url"],
        data=in_pieces(big, 64 * 1024),
        headers=signed_headers(secret, big),
        timeout=10,
    )
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"

    # Broken chunk framing: the server cannot read the body; 400, not 500.
    head = {**signed_headers(secret, b"{}"), "Transfer-Encoding": "chunked"}
    answer = raw_request(served["port"], served["path"], head, b"zz\r\n{}\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"unreadable_body" in answer

    # Unsigned and deeply nested: 401 before anything is parsed that could fail.
    nested = b'{"a":' * 2000
    response = requests.post(
        served["url"],
        data=nested,
        headers={"webhook-id": "x", "webhook-timestamp": "1", "webhook-signature": "y"},
        timeout=10,
    )
    assert response.status_code == 401

    # Signed, deeply nested or with a lone surrogate: stored as ignored.
    for hostile in (nested, b'{"eventType": "\\ud800", "data": {}}'):
        headers = signed_headers(secret, hostile)
        response = requests.post(served["url"], data=hostile, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        assert WebhookDelivery.objects.get(webhook_id=headers["webhook-id"]).state == State.IGNORED

    log = processes.output(served["web"])
    # (/healthz answers 503 here, logged at ERROR: no worker runs in this test.)
    errors = [line for line in log.splitlines() if " ERROR " in line and "/healthz" not in line]
    assert not errors and "Traceback" not in log, log[-3000:]
