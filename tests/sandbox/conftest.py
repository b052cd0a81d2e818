"""Helpers for the sandbox's own tests: an HTTP client bound to a seeded company, a receiver."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

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


@pytest.fixture
def sb(pleo_sandbox):
    """The sandbox with one company ("Acme ApS", DKK), its API key and a client using it."""
    state = pleo_sandbox.state
    company = state.add_company("Acme ApS", currency="DKK")
    key = state.add_api_key(company.id)
    api = Api(pleo_sandbox.url, key)
    yield Sandbox(pleo_sandbox, pleo_sandbox.url, state, company, key, api)
    api.close()


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


@pytest.fixture
def receiver():
    created: list[Receiver] = []

    def make(statuses: list[int] | None = None, delay: float = 0.0) -> Receiver:
        r = Receiver(statuses, delay)
        created.append(r)
        return r

    yield make
    for r in created:
        r.stop()
