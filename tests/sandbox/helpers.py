"""Helpers for the sandbox's own tests: a client, a webhook receiver, a response checker."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from tests.openapi_schemas import SPEC_FILES, load_spec, validate, validate_response

TIMEOUT = 5


class Api:
    """``requests`` bound to the sandbox URL and one credential; every call has a timeout."""

    def __init__(self, base_url: str, credential=None) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.headers = credential.auth_header() if credential is not None else {}

    def request(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", TIMEOUT)
        headers = {**self.headers, **kw.pop("headers", {})}
        return self.session.request(method, self.base_url + path, headers=headers, **kw)

    def get(self, path: str, **kw) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw) -> requests.Response:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw) -> requests.Response:
        return self.request("DELETE", path, **kw)

    def event(self, job_id: str, event: str, **extra) -> requests.Response:
        return self.post("/v3/export-job-events", json={"jobId": job_id, "event": event, **extra})

    def job(self, job_id: str) -> dict:
        response = self.get(f"/v3/export-jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def close(self) -> None:
        self.session.close()


@dataclass
class Sandbox:
    server: object
    url: str
    state: object
    company: object
    key: object
    api: Api

    def client(self, credential=None) -> Api:
        return Api(self.url, credential)


def _templates() -> list[tuple[re.Pattern[str], str, str]]:
    out = []
    for spec in SPEC_FILES:
        for template in load_spec(spec)["paths"]:
            regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            out.append((re.compile(regex), template, spec))
    return out


def assert_error(response, status: int, error_type: str, message: str, method: str, path: str):
    """A documented error answer: ``status``, Pleo's ``{type, message}`` body, valid as the spec
    has it for ``method path``."""
    assert response.status_code == status
    assert response.json() == {"type": error_type, "message": message}
    validate_response(response.json(), method, path, status)


def check_logged_responses(state) -> int:
    """Validate every logged API response against Pleo's spec (field names closed).

    Documented statuses use the operation's schema; undocumented error statuses (400, 401,
    403, 415, …) and documented ones without a body must still be an ``ExceptionInfo``.
    Bodies of injected ``status``/``rate_limit`` faults are whatever the test asked for.
    """
    templates = _templates()
    checked = 0
    for entry in state.requests():
        if not entry.get("complete") or entry["status"] is None:
            continue
        if entry["fault"] in ("status", "rate_limit"):
            continue
        match = next(((t, s) for rx, t, s in templates if rx.fullmatch(entry["path"])), None)
        if match is None:
            continue
        template, spec = match
        method, status, body = entry["method"], entry["status"], entry["responseBody"]
        operation = load_spec(spec)["paths"][template].get(method.lower())
        documented = operation and operation["responses"].get(str(status))
        try:
            if documented and ("content" in documented or status < 400):
                validate_response(body, method, template, status, spec, no_extra_fields=True)
            elif status >= 400:
                validate(body, "ExceptionInfo", no_extra_fields=True)
                assert isinstance(body["message"], str) and body["message"]
            else:
                raise AssertionError(f"undocumented success status {status}")
        except Exception as exc:
            raise AssertionError(f"{method} {entry['path']} -> {status}: {exc}") from exc
        checked += 1
    return checked


class Receiver:
    """A tiny webhook receiver: records every POST; answers with the queued statuses."""

    def __init__(self, statuses: list[int] | None = None, delay: float = 0.0) -> None:
        self.statuses = list(statuses or [])
        self.delay = delay
        self.received: list[dict] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver._cond:
                    status = receiver.statuses.pop(0) if receiver.statuses else 204
                    receiver.received.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                            "json": json.loads(body),
                            "at": time.monotonic(),
                        }
                    )
                    receiver._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/pleo"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def wait_for(self, n: int, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {n} deliveries, got {len(self.received)}")
                self._cond.wait(remaining)
            return list(self.received)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- v1 subscriptions (tests/sandbox/test_subscriptions.py, test_webhooks.py) --------------------
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
