"""HTTP plumbing: parse requests, route them, apply faults, log them, answer like Pleo.

Routing tables live in :mod:`pleo_sandbox.routes`; this module only speaks HTTP/1.1 (keep-alive,
exact Content-Length, chunked request bodies) and never lets an exception kill a handler thread.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pleo_sandbox import routes
from pleo_sandbox.clock import iso
from pleo_sandbox.errors import ApiError
from pleo_sandbox.messages import JSON_CONTENT_TYPE, Request, Response
from pleo_sandbox.requestlog import redact_fields, redact_headers

logger = logging.getLogger("pleo_sandbox")

MAX_BODY_BYTES = 5 * 1024 * 1024


class _BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _wall() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class SandboxRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PleoSandbox/1.0"
    sys_version = ""
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 60

    # -- connection tracking (so stop() can close keep-alive connections) -----------------------
    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.untrack(self.connection)

    def version_string(self) -> str:
        return self.server_version

    # -- logging -----------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s %s", self.client_address[0], format % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # each request is logged once by _handle

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, unsupported method…) as JSON, too."""
        try:
            self.close_connection = True
            # A malformed request line leaves the default HTTP/0.9 (no status line): answer 1.1.
            self.request_version = "HTTP/1.1"
            body = json.dumps(
                {
                    "type": "BAD_REQUEST" if code < 500 else "NOT_IMPLEMENTED",
                    "message": message or explain or "Bad request",
                }
            ).encode()
            self.send_response(code)
            self.send_header("Content-Type", JSON_CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass

    # -- methods ---------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        try:
            self._handle()
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            self.close_connection = True
        except Exception:
            logger.exception("pleo sandbox: unhandled error on %s %s", self.command, self.path)
            self.close_connection = True
            try:
                self._send(Response(500, {"type": "INTERNAL_ERROR", "message": "Sandbox error."}))
            except OSError:
                pass

    # -- body ----------------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise _BodyError(400, "Malformed chunked body.")
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise _BodyError(413, "Request body too large.")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            raise _BodyError(400, "Invalid Content-Length.")
        if length < 0:
            raise _BodyError(400, "Invalid Content-Length.")
        if length > MAX_BODY_BYTES:
            raise _BodyError(413, "Request body too large.")
        return self.rfile.read(length) if length else b""

    # -- main ------------------------------------------------------------------------------------
    def _handle(self) -> None:
        state = self.server.state
        started_mono = time.monotonic()
        started_wall = _wall()
        split = urlsplit(self.path)
        path = split.path or "/"
        query = parse_qs(split.query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            raw = self._read_body()
        except _BodyError as exc:
            self.close_connection = True
            self._send(Response(exc.status, {"type": "BAD_REQUEST", "message": exc.message}))
            return
        req = Request(
            self.command, path, query, headers, raw, request_id=headers.get("x-request-id")
        )

        if path == "/_sandbox" or path.startswith("/_sandbox/"):
            self._send(routes.handle_control(self.server, req), req.request_id)
            return

        oauth = routes.is_oauth_path(path)
        form = req.form_body()
        entry = state.request_log.start(
            {
                "method": req.method,
                "path": path,
                "query": {k: list(v) for k, v in query.items()},
                # Form bodies (OAuth) are logged as a dict with secrets redacted.
                "body": redact_fields(form) if form is not None else req.loose_body(),
                "headers": redact_headers(dict(self.headers.items())),
                "identity": (
                    state.oauth.identity(req)
                    if oauth
                    else state.identity_for(headers.get("authorization"))
                ),
                "requestId": req.request_id,
                "sandboxTime": iso(state.clock.now()),
                "startedAt": started_wall,
                "startedMonotonic": started_mono,
                "status": None,
                "fault": None,
                "faultId": None,
                "outcome": None,
                "responseSent": None,
                "complete": False,
            }
        )
        route, params, allowed = routes.match_api(req.method, path)
        fault = None
        response: Response | None
        outcome = "answered"
        if route is None:
            if allowed:
                response = Response(
                    405,
                    {
                        "type": "METHOD_NOT_ALLOWED",
                        "message": f"Method {req.method} is not allowed on {path}.",
                    },
                    {"Allow": ", ".join(sorted(allowed))},
                )
            else:
                response = Response(
                    404, {"type": "NOT_FOUND", "message": f"No endpoint {req.method} {path}."}
                )
        else:
            fault = state.faults.take(req.method, path, req.match_body())
            response, outcome = self._run_with_fault(route, params, req, fault)
        if response is not None and response.status >= 400 and not oauth:
            # The error_type_case switch; bodies a test gave a fault are sent as given.
            if fault is None or fault.body is None:
                response.body = state.error_body(response.body)

        status = response.status if response is not None else None
        # The entry is complete before the answer leaves: a client holding its answer always
        # finds the request logged (endedAt is when the answer was ready to send).
        state.request_log.finish(
            entry,
            status=status,
            responseSent=response is not None,
            responseBody=(redact_fields(response.body) if oauth else response.body)
            if response is not None and not isinstance(response.body, bytes)
            else None,
            # e.g. Retry-After of a 429 (never a secret: the sandbox sets no cookie or token)
            responseHeaders=dict(response.headers) if response is not None else None,
            fault=fault.kind if fault else None,
            faultId=fault.id if fault else None,
            outcome=outcome,
            endedAt=_wall(),
            endedMonotonic=time.monotonic(),
        )
        try:
            if response is not None:
                self._send(response, req.request_id)
            else:
                self._drop(rst=outcome == "reset")
        except OSError:  # the client went away (e.g. after a stall): nothing to answer
            self.close_connection = True
            state.request_log.update(entry, responseSent=False)
        logger.debug(
            "pleo sandbox %s %s -> %s (%s)%s",
            req.method,
            path,
            status,
            entry["identity"],
            f" fault={fault.kind}" if fault else "",
        )

    def _call(self, route, params: dict, req: Request) -> Response:
        state = self.server.state
        try:
            cred = state.authenticate(req.headers.get("authorization")) if route.auth else None
            if cred is not None:
                state.count_request(cred)  # the steady rate limit (429 past it)
            return route.fn(state, req, cred, **params)
        except ApiError as exc:
            return Response.error(exc)

    def _run_with_fault(self, route, params, req: Request, fault) -> tuple[Response | None, str]:
        """Return ``(response or None to drop the connection, outcome)``."""
        state = self.server.state
        if fault is None:
            return self._call(route, params, req), "answered"
        kind = fault.kind
        if kind == "latency":
            state.stop_event.wait(float(fault.seconds or 0))
            return self._call(route, params, req), "answered"
        if kind == "status":
            if fault.apply:
                self._call(route, params, req)
            body = fault.body
            if body is None:
                body = {
                    "type": "INTERNAL_SERVER_ERROR"
                    if fault.status < 503
                    else "SERVICE_UNAVAILABLE",
                    "message": "Injected fault.",
                }
            content_type = JSON_CONTENT_TYPE if not isinstance(body, str) else "text/plain"
            if isinstance(body, str):
                body = body.encode()
            return Response(fault.status, body, dict(fault.headers or {}), content_type), "answered"
        if kind == "rate_limit":
            retry_after = fault.retry_after
            text = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
            body = fault.body or {"type": "TOO_MANY_REQUESTS", "message": "Rate limit exceeded."}
            return Response(429, body, {"Retry-After": text, **(fault.headers or {})}), "answered"
        if kind == "reset":
            return None, "reset"
        if kind == "stall":
            seconds = fault.seconds
            if seconds is None:
                seconds = float(state.switches["stall_seconds"])
            state.stop_event.wait(float(seconds))
            if fault.apply:
                return self._call(route, params, req), "late_answer"
            return None, "dropped"
        if kind == "apply_then_drop":
            self._call(route, params, req)
            return None, "dropped"
        if kind == "other_integration_starts":
            state.other_integration_preempts(req.loose_body())
            return self._call(route, params, req), "answered"
        raise AssertionError(kind)

    # -- output ------------------------------------------------------------------------------
    def _drop(self, *, rst: bool) -> None:
        self.close_connection = True
        if rst:
            try:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.server.mark_reset(self.connection)
            except OSError:
                pass

    def _send_stream(self, response: Response, request_id: str | None) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        chunked = response.length is None
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(response.length))
        if request_id:
            self.send_header("X-Request-Id", request_id)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.cut:
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            for piece in response.stream or ():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _send(self, response: Response, request_id: str | None = None) -> None:
        if response.stream is not None:
            self._send_stream(response, request_id)
            return
        body = response.body
        if body is None:
            payload = b""
        elif isinstance(body, bytes):
            payload = body
        else:
            payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
        self.send_response(response.status)
        no_body = response.status in (204, 304) or 100 <= response.status < 200
        if payload:
            self.send_header("Content-Type", response.content_type)
        if not no_body:
            self.send_header("Content-Length", str(len(payload)))
        if request_id:
            self.send_header("X-Request-Id", request_id)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        # Headers and body in one write: two small writes meet Nagle + delayed ACK (~40 ms).
        self._headers_buffer.append(b"\r\n")
        if payload and not no_body and self.command != "HEAD":
            self._headers_buffer.append(payload)
        self.wfile.write(b"".join(self._headers_buffer))
        self._headers_buffer = []
        self.wfile.flush()
