"""The HTTP server itself: auth, robustness, keep-alive, the request log, start/stop cost."""

import base64
import http.client
import json
import logging
import socket
import threading
import time

import pytest
import requests

from pleo_sandbox.server import SandboxServer
from tests.openapi_schemas import validate

JSON_TYPE = "application/json;charset=UTF-8"


def basic(key: str, password: str = "") -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:{password}".encode()).decode()}


# -- auth --
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic !!!"},
        basic("pleo_sbx_unknown"),
        {"Authorization": "Bearer not-registered"},
        {"Authorization": "Token abc"},
    ],
)
def test_unauthorised_requests(sb, headers):
    response = requests.get(f"{sb.url}/v3/export-jobs", headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == JSON_TYPE
    body = response.json()
    validate(body, "ExceptionInfo")
    assert body["type"] == "UNAUTHORIZED" and body["message"]


def test_basic_auth_needs_an_empty_password(sb):
    ok = requests.get(f"{sb.url}/v3/export-jobs", headers=basic(sb.key.key), timeout=5)
    assert ok.status_code == 200
    wrong = requests.get(f"{sb.url}/v3/export-jobs", headers=basic(sb.key.key, "x"), timeout=5)
    assert wrong.status_code == 401
    # `requests`' own basic auth with an empty password is what a client would send.
    via_auth = requests.get(f"{sb.url}/v3/export-jobs", auth=(sb.key.key, ""), timeout=5)
    assert via_auth.status_code == 200


def test_bearer_tokens_expire_and_keys_can_be_revoked(sb):
    token = sb.state.add_token(sb.company.id, expires_in=60)
    api = sb.client(token)
    assert api.get("/v3/export-jobs").status_code == 200
    sb.state.advance_clock(61)
    expired = api.get("/v3/export-jobs")
    assert expired.status_code == 401 and "expired" in expired.json()["message"]
    api.close()
    assert sb.api.get("/v3/export-jobs").status_code == 200
    sb.state.revoke(sb.key.id)
    assert sb.api.get("/v3/export-jobs").status_code == 401
    # A token is not an API key and the other way round.
    assert (
        requests.get(
            f"{sb.url}/v3/export-jobs", headers={"Authorization": f"Bearer {sb.key.key}"}, timeout=5
        ).status_code
        == 401
    )


def test_scopes(sb):
    read_only = sb.client(sb.state.add_token(sb.company.id, scopes=["export-jobs:read"]))
    job = sb.state.create_job(sb.company.id, 1)
    assert read_only.get("/v3/export-jobs").status_code == 200
    denied = read_only.event(job["id"], "started")
    assert denied.status_code == 403 and denied.json()["type"] == "FORBIDDEN"
    assert read_only.get("/v3/export-items", params={"job_id": job["id"]}).status_code == 403
    read_only.close()


# -- robustness --
def test_malformed_json_and_wrong_content_types(sb):
    job = sb.state.create_job(sb.company.id, 1)
    cases = [
        ({"Content-Type": "application/json"}, b'{"jobId": ', 400),
        ({"Content-Type": "application/json"}, b"\xff\xfe", 400),
        ({"Content-Type": "text/plain"}, json.dumps({"jobId": job["id"], "event": "started"}), 415),
        ({}, b"", 400),
    ]
    for headers, data, status in cases:
        response = sb.api.post("/v3/export-job-events", data=data, headers=headers)
        assert response.status_code == status, (headers, data, response.text)
        assert response.headers["Content-Type"] == JSON_TYPE
        assert response.json()["type"] in ("BAD_REQUEST", "UNSUPPORTED_MEDIA_TYPE")
    ok = sb.api.post(
        "/v3/export-job-events",
        data=json.dumps({"jobId": job["id"], "event": "started"}),
        headers={"Content-Type": "application/json;charset=UTF-8"},
    )
    assert ok.status_code == 202


def test_unknown_paths_and_methods(sb):
    for method, path, status in [
        ("GET", "/v3/nothing-here", 404),
        ("GET", "/", 404),
        ("DELETE", "/v3/export-jobs", 405),
        ("PATCH", "/v3/export-job-events", 405),
        ("HEAD", "/v3/export-job-events", 405),
    ]:
        response = sb.api.request(method, path)
        assert response.status_code == status, (method, path)
        if method != "HEAD":
            assert response.json()["type"] in ("NOT_FOUND", "METHOD_NOT_ALLOWED")
        if status == 405:
            assert "Allow" in response.headers
    assert sb.api.request("DELETE", "/v3/export-jobs").headers["Allow"] == "GET, POST"


def raw_exchange(url: str, payload: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=3) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_garbage_on_the_wire_does_not_kill_the_server(sb):
    answer = raw_exchange(sb.url, b"THIS IS NOT HTTP\r\n\r\n")
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
    raw_exchange(sb.url, b"GET /v3/export-jobs HTTP/1.1\r\nContent-Length: nope\r\n\r\n")
    raw_exchange(sb.url, b"")
    answer = raw_exchange(
        sb.url,
        b"POST /v3/export-job-events HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n",
    )
    assert b" 413 " in answer.split(b"\r\n")[0]
    assert sb.api.get("/v3/export-jobs").status_code == 200


def test_keep_alive_and_exact_content_length(sb):
    host, port = sb.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        for _ in range(3):
            conn.request("GET", "/v3/export-jobs", headers=sb.key.auth_header())
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200
            assert int(response.getheader("Content-Length")) == len(body)
            assert response.getheader("Connection") != "close"
        sock = conn.sock
        conn.request("GET", "/v3/export-jobs/not-a-uuid", headers=sb.key.auth_header())
        conn.getresponse().read()
        assert conn.sock is sock, "the same connection served every request"
    finally:
        conn.close()


def test_chunked_request_body(sb):
    job = sb.state.create_job(sb.company.id, 1)
    payload = json.dumps({"jobId": job["id"], "event": "started"}).encode()

    def gen():
        yield payload[:10]
        yield payload[10:]

    response = sb.api.post(
        "/v3/export-job-events", data=gen(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 202
    assert sb.api.job(job["id"])["status"] == "in_progress"


# -- request log and logging --
def test_request_log_records_everything_but_secrets(sb, caplog):
    caplog.set_level(logging.DEBUG, logger="pleo_sandbox")
    job = sb.state.create_job(sb.company.id, 1)
    before = time.monotonic()
    sb.api.post(
        "/v3/export-job-events",
        json={"jobId": job["id"], "event": "started"},
        headers={"X-Request-Id": "req-123"},
    )
    sb.api.get("/v3/export-jobs", params={"statuses": ["pending", "in_progress"], "limit": 5})
    requests.get(f"{sb.url}/v3/export-jobs", headers=basic("pleo_sbx_wrong"), timeout=5)
    post, get, bad = sb.state.requests()
    assert post["method"] == "POST" and post["path"] == "/v3/export-job-events"
    assert post["body"] == {"jobId": job["id"], "event": "started"}
    assert post["requestId"] == "req-123" and post["status"] == 202
    assert post["identity"] == sb.key.identity and post["fault"] is None
    assert before <= post["startedMonotonic"] <= post["endedMonotonic"]
    assert post["startedAt"].endswith("Z") and post["endedAt"] >= post["startedAt"]
    assert get["query"] == {"statuses": ["pending", "in_progress"], "limit": ["5"]}
    assert get["responseBody"]["data"][0]["status"] == "in_progress"
    assert bad["status"] == 401 and bad["identity"] == "unknown"
    dumped = json.dumps(sb.state.requests()) + caplog.text
    assert sb.key.key not in dumped
    assert base64.b64encode(f"{sb.key.key}:".encode()).decode() not in dumped
    assert "pleo_sbx_wrong" not in dumped
    assert post["headers"]["Authorization"] == "<redacted>"
    assert sb.state.requests(method="GET", path="/v3/export-jobs") == [get, bad]
    sb.state.clear_requests()
    assert sb.state.requests() == []


def test_control_requests_are_not_logged(sb):
    requests.get(f"{sb.url}/_sandbox/health", timeout=5)
    assert sb.state.requests() == []


# -- lifecycle --
def test_start_is_cheap_and_stop_releases_the_port():
    server = SandboxServer()
    started = time.perf_counter()
    url = server.start()
    elapsed = time.perf_counter() - started
    assert elapsed < 0.05, elapsed
    assert requests.get(f"{url}/_sandbox/health", timeout=5).json()["ok"] is True
    # An idle keep-alive connection must not keep a stopped server answering.
    session = requests.Session()
    assert session.get(f"{url}/_sandbox/health", timeout=5).status_code == 200
    started = time.perf_counter()
    server.stop()
    assert time.perf_counter() - started < 0.5
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(f"{url}/_sandbox/health", timeout=2)
    session.close()
    server.stop()  # idempotent


def test_stop_wakes_stalled_requests(sb):
    sb.state.add_fault("stall", "GET", "/v3/export-jobs", seconds=30)
    outcome = {}

    def call():
        try:
            requests.get(f"{sb.url}/v3/export-jobs", headers=sb.key.auth_header(), timeout=5)
        except requests.exceptions.RequestException as exc:
            outcome["error"] = exc

    t = threading.Thread(target=call)
    t.start()
    sb.state.request_log.wait_for(lambda log: len(log) == 1, timeout=3)
    started = time.perf_counter()
    sb.server.stop()
    t.join(timeout=3)
    assert not t.is_alive()
    assert time.perf_counter() - started < 1
    assert "error" in outcome


def test_fixture_gives_a_running_server(pleo_sandbox):
    assert pleo_sandbox.url.startswith("http://127.0.0.1:")
    assert requests.get(f"{pleo_sandbox.url}/_sandbox/health", timeout=5).status_code == 200
    assert pleo_sandbox.state.companies() == []
