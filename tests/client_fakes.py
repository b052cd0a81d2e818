"""Fakes for the Pleo client tests: URLs and helpers for requests faked with `responses` (checked
against Pleo's OpenAPI schemas), JSON builders shaped like Pleo's schemas, transport exceptions
built the way requests/urllib3 build them, and tiny real TCP servers. The client tests' fixtures
(``http``, ``make_client``, ``client``, ...) are in ``tests/pleo_client/conftest.py``."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from exports.pleo import ItemUpdate, JobEvent
from tests.openapi_schemas import validate_request_body, validate_response

BASE_URL = "https://pleo.test"
COMPANY_ID = "5d3c4b1a-0000-4000-8000-0000000000c0"
JOB_ID = "8f6e1c2a-0000-4000-8000-0000000000a1"
JOB_ID_2 = "8f6e1c2a-0000-4000-8000-0000000000a2"
SUBSCRIPTION_ID = "123e4567-e89b-12d3-a456-426614174000"


URL = BASE_URL
JOBS = f"{URL}/v3/export-jobs"
JOB = f"{JOBS}/{JOB_ID}"
ITEMS = f"{JOB}/items"
PUT_ITEMS_PATH = "/v3/export-jobs/{jobId}/items"
EVENTS = f"{URL}/v3/export-job-events"
EXPORT_ITEMS = f"{URL}/v3/export-items"
SUBSCRIPTIONS = f"{URL}/v1/subscriptions"
SUBSCRIPTION = f"{SUBSCRIPTIONS}/{SUBSCRIPTION_ID}"
NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
PLEO_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def entry_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


# --- Requests faked with `responses`: what was sent, checked against Pleo's schemas -------------
# Request bodies are checked against the operation's requestBody schema with no_extra_fields, so
# a misspelled or invented field name (say ``exportJobId``) fails as well as a wrong value.


def check_request(body: object, method: str, path: str) -> None:
    validate_request_body(body, method, path, no_extra_fields=True)


def check_response(body: object, method: str, path: str) -> None:
    validate_response(body, method, path, 200, no_extra_fields=True)


def query(call) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def sent_json(call):
    return json.loads(call.request.body)


def post_event(client) -> None:
    client.post_export_job_event(JOB_ID, JobEvent.STARTED)


def put_items(client) -> None:
    client.update_export_job_items(JOB_ID, [ItemUpdate.successful(entry_id(1))])


# --- JSON shaped like Pleo's responses ------------------------------------------------------------


def job_json(**overrides: Any) -> dict[str, Any]:
    job = {
        "id": JOB_ID,
        "companyId": COMPANY_ID,
        "status": "pending",
        "createdAt": "2025-05-23T15:21:32Z",
        "expiresIn": 3600,
        "isInteractive": True,
        "numberOfItems": 2,
        "vendorBasedBookkeeping": False,
        "createdBy": "0b1c2d3e-0000-4000-8000-00000000000b",
        "startedAt": None,
        "lastUpdatedAt": "2025-05-23T15:21:32Z",
        "completedAt": None,
        "expiredAt": None,
        "failureReason": None,
    }
    job.update(overrides)
    return job


def timestamp(moment: datetime) -> str:
    """Pleo's form of a moment: UTC, ``YYYY-MM-DDTHH:MM:SSZ``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def company_job_json(
    company_id: Any, *, created_at: datetime, job_id: Any = None, **overrides: Any
) -> dict[str, Any]:
    """A new job of ``company_id`` (a fresh id unless given), as Pleo lists it: nothing set yet
    that Pleo sets later (``createdBy``, ``lastUpdatedAt``, ``failureReasonType`` are null)."""
    return job_json(
        **{
            "id": str(job_id or uuid.uuid4()),
            "companyId": str(company_id),
            "createdAt": timestamp(created_at),
            "createdBy": None,
            "lastUpdatedAt": None,
            "failureReasonType": None,
            **overrides,
        }
    )


def job_item_json(n: int = 1, **overrides: Any) -> dict[str, Any]:
    item = {
        "accountingEntryId": entry_id(n),
        "exportJobId": JOB_ID,
        "status": "pending",
        "exportedAt": None,
        "externalId": None,
        "externalUrl": None,
        "failureReason": None,
    }
    item.update(overrides)
    return item


def money(value: int = 89696, currency: str = "DKK") -> dict[str, Any]:
    return {"currency": currency, "value": value}


def export_item_json(n: int = 1, **overrides: Any) -> dict[str, Any]:
    amount = {"inSupplierCurrency": money(), "inWalletCurrency": money()}
    item = {
        "_links": {"web": {"exportItem": "https://app.pleo.io/x"}},
        "accountingEntryId": entry_id(n),
        "accountingEntryLines": [
            {
                "accountingEntryLineId": "7a000000-0000-4000-8000-000000000001",
                "lineAmount": amount,
                "netAmount": amount,
            }
        ],
        "additionalInformation": {"reconciliationId": "B-1"},
        "amount": amount,
        "companyId": COMPANY_ID,
        "date": "2025-05-20T00:00:00Z",
        "type": "card_purchase",
        "note": "Lunch",
    }
    item.update(overrides)
    return item


def subscription_json(**overrides: Any) -> dict[str, Any]:
    subscription = {
        "id": SUBSCRIPTION_ID,
        "endpointUrl": "https://bridge.example/webhook/abc",
        "eventTypes": ["v1.export-job.created"],
        "status": "ACTIVE",
        "createdAt": "2022-01-01T00:00:00Z",
        "updatedAt": "2022-01-10T00:00:00Z",
    }
    subscription.update(overrides)
    return subscription


def page(data: list[Any], *, next_cursor: str | None = None) -> dict[str, Any]:
    """A ``CursorPaginatedResponse``: hasNextPage when ``next_cursor`` is given."""
    pagination: dict[str, Any] = {
        "currentRequestPagination": {"parameters": {}},
        "hasNextPage": next_cursor is not None,
        "hasPreviousPage": False,
        "total": len(data),
    }
    if next_cursor is not None:
        pagination["endCursor"] = next_cursor
    return {"data": data, "pagination": pagination}


# --- Transport exceptions, chained as requests/urllib3 chain them ---------------------------------


def refused() -> requests.exceptions.ConnectionError:
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused")
    return requests.exceptions.ConnectionError(MaxRetryError(None, "/", reason=reason))


def dns_failure() -> requests.exceptions.ConnectionError:
    reason = NameResolutionError(
        "pleo.test", None, socket.gaierror(-2, "Name or service not known")
    )
    return requests.exceptions.ConnectionError(MaxRetryError(None, "/", reason=reason))


def connect_timeout() -> requests.exceptions.ConnectTimeout:
    reason = ConnectTimeoutError(None, "Connection to pleo.test timed out. (connect timeout=5)")
    return requests.exceptions.ConnectTimeout(MaxRetryError(None, "/", reason=reason))


def read_timeout() -> requests.exceptions.ReadTimeout:
    return requests.exceptions.ReadTimeout(ReadTimeoutError(None, "/", "Read timed out."))


def body_read_timeout() -> requests.exceptions.ConnectionError:
    """What requests raises when the read times out while streaming the body."""
    return requests.exceptions.ConnectionError(ReadTimeoutError(None, "/", "Read timed out."))


def dropped() -> requests.exceptions.ConnectionError:
    cause = http.client.RemoteDisconnected("Remote end closed connection without response")
    return requests.exceptions.ConnectionError(ProtocolError("Connection aborted.", cause))


def cut_off() -> requests.exceptions.ChunkedEncodingError:
    return requests.exceptions.ChunkedEncodingError(ProtocolError("Response ended prematurely"))


# --- Real sockets ---------------------------------------------------------------------------------


def closed_port() -> int:
    """A local port with nothing listening (connecting to it is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RawServer:
    """A TCP server on 127.0.0.1. Each connection gets a thread that reads one request (head and
    body) and hands the socket and the raw request to ``behaviour``."""

    def __init__(self, behaviour: Callable[[socket.socket, bytes, RawServer], None]) -> None:
        self.behaviour = behaviour
        self.requests: list[bytes] = []
        self.stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            worker = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            worker.start()
            self._workers.append(worker)

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            raw = _read_request(conn)
            self.requests.append(raw)
            self.behaviour(conn, raw, self)

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=5)
        for worker in self._workers:
            worker.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _read_request(conn: socket.socket) -> bytes:
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def silent(conn: socket.socket, raw: bytes, server: RawServer) -> None:
    """Read the request, never answer (the client's read timeout fires)."""
    server.stop.wait(10)


def hang_up(conn: socket.socket, raw: bytes, server: RawServer) -> None:
    """Read the request, then close without answering (RemoteDisconnected)."""


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Callable:
    """Answer every request with ``status`` and a JSON ``body``."""
    payload = b"" if body is None else json.dumps(body).encode()

    def behaviour(conn: socket.socket, raw: bytes, server: RawServer) -> None:
        reason = http.client.responses.get(status, "Unknown")
        lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(payload)}"]
        lines += ["Content-Type: application/json;charset=UTF-8", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)

    return behaviour


def new_uuid() -> str:
    return str(uuid.uuid4())
