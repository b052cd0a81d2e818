"""The generic HTTP mechanics of a local sandbox, shared by ``pleo_sandbox`` and ``xero_sandbox``.

* :class:`BaseSandboxServer`: a stdlib ``ThreadingHTTPServer`` on ``host:port`` (port 0: an
  ephemeral port) serving in a daemon thread; ``start()`` returns the base URL, ``stop()`` closes
  the listening socket and every open keep-alive connection. Subclasses set ``handler_class``,
  ``state_class`` and ``label`` and may override ``on_start``/``on_stop``.
* :class:`BaseRequestHandler`: HTTP/1.1 (keep-alive, exact ``Content-Length``, chunked request
  bodies up to ``max_body_bytes``), one write per answer, TCP RST on demand, and the fault kinds
  every sandbox shares (:mod:`pleo_sandbox.faults`) in :meth:`BaseRequestHandler.run_with_fault`,
  the control API (``/_sandbox/…``, the subclass's ``control_routes``) and the request log's
  entries. Subclasses implement ``_handle`` (route, log, answer) and ``_call`` (run one route).

The state object a server carries needs only ``stop_event`` (a ``threading.Event``), a
``switches`` dict with ``stall_seconds`` and a writable ``base_url``. Nothing here knows Pleo.
"""

from __future__ import annotations

import json
import logging
import selectors
import signal
import socket
import socketserver
import struct
import threading
import time
import weakref
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pleo_sandbox.clock import iso, wall_time
from pleo_sandbox.messages import JSON_CONTENT_TYPE, Request, Response
from pleo_sandbox.requestlog import redact_headers
from pleo_sandbox.routing import Route, run_control

logger = logging.getLogger("pleo_sandbox")


class BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address, state, url_getter, handler_class) -> None:
        self.state = state
        self._url_getter = url_getter
        self._connections: set[socket.socket] = set()
        self._reset: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._conn_lock = threading.Lock()
        super().__init__(address, handler_class)

    @property
    def url(self) -> str:
        return self._url_getter()

    def track(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._connections.discard(conn)

    def mark_reset(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._reset.add(conn)

    def shutdown_request(self, request) -> None:
        # A "reset" fault closes with SO_LINGER=0 (TCP RST): skip the polite FIN first.
        with self._conn_lock:
            reset = request in self._reset
        if reset:
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def serve_until_stopped(self, wake: socket.socket) -> None:
        """Like ``serve_forever`` but woken at once by a byte on ``wake`` (no poll delay)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ, "listen")
            selector.register(wake, selectors.EVENT_READ, "wake")
            while True:
                for key, _ in selector.select():
                    if key.data == "wake":
                        return
                    self._handle_request_noblock()
                self.service_actions()

    def close_connections(self) -> None:
        with self._conn_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup: skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = port

    def handle_error(self, request, client_address) -> None:
        logger.exception("sandbox: error handling a connection from %s", client_address)


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class BaseSandboxServer:
    """A sandbox on ``host:port`` (port 0: an ephemeral port); subclasses name the parts."""

    handler_class: type[BaseHTTPRequestHandler]
    state_class: type
    label = "sandbox"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, seed: int | None = None, *, state=None
    ) -> None:
        self.host = host
        self.port = port
        self.state = state or self.state_class(seed=seed)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError(f"the {self.label} is not started")
        host, port = self._httpd.server_address[:2]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    def _logger(self) -> logging.Logger:
        return logging.getLogger(self.label.replace(" ", "_"))  # pleo_sandbox, xero_sandbox

    def on_start(self) -> None:
        """Called before the server binds (e.g. restart background workers)."""

    def on_stop(self) -> None:
        """Called after the server stopped serving."""

    def start(self) -> str:
        """Bind, serve in a daemon thread and return the base URL."""
        if self._httpd is not None:
            return self.url
        server_cls = _HTTPServer6 if ":" in self.host else _HTTPServer
        self.state.stop_event.clear()
        self.on_start()
        self._httpd = server_cls(
            (self.host, self.port), self.state, lambda: self.url, self.handler_class
        )
        self.port = self._httpd.server_address[1]
        self.state.base_url = self.url
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(
            target=self._httpd.serve_until_stopped,
            args=(self._wake_r,),
            name=f"{self.label.replace(' ', '-')}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._logger().info("%s listening on %s (seed %s)", self.label, self.url, self.state.seed)
        return self.url

    def stop(self) -> None:
        """Stop serving, close the listening socket and open connections."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.state.stop_event.set()
        self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._wake_r.close()
        self._wake_w.close()
        httpd.close_connections()
        httpd.server_close()
        self.on_stop()
        self._logger().info("%s on port %s stopped", self.label, self.port)

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def serve_until_signalled(self, announce) -> None:
        """For a command line: call ``announce()``, serve until Ctrl-C or SIGTERM, then stop."""
        stop = threading.Event()
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            announce()
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.stop()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class BaseRequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 plumbing; never lets an exception kill a handler thread."""

    protocol_version = "HTTP/1.1"
    server_version = "Sandbox/1.0"
    sys_version = ""
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 60
    max_body_bytes = 5 * 1024 * 1024
    control_routes: list[Route] = []

    # -- hooks -----------------------------------------------------------------------------------
    def _handle(self, req: Request) -> None:  # pragma: no cover - abstract
        """Answer one API request (control requests and unreadable bodies are answered already)."""
        raise NotImplementedError

    def _call(self, route, params: dict, req) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError

    def protocol_error_body(self, code: int, message: str) -> Any:
        return {"type": "BAD_REQUEST" if code < 500 else "NOT_IMPLEMENTED", "message": message}

    def internal_error_response(self) -> Response:
        return Response(500, {"type": "INTERNAL_ERROR", "message": "Sandbox error."})

    def fault_status_body(self, status: int) -> Any:
        return {
            "type": "INTERNAL_SERVER_ERROR" if status < 503 else "SERVICE_UNAVAILABLE",
            "message": "Injected fault.",
        }

    def fault_rate_limit_body(self) -> Any:
        return {"type": "TOO_MANY_REQUESTS", "message": "Rate limit exceeded."}

    def body_error_response(self, status: int, message: str) -> Response:
        return Response(status, {"type": "BAD_REQUEST", "message": message})

    def handle_control(self, req: Request) -> Response:
        return run_control(self.control_routes, self.server, req)

    def custom_fault(self, route, params, req, fault) -> tuple[Response | None, str]:
        raise AssertionError(fault.kind)

    def response_body_for_log(self, req: Request, response: Response) -> Any:
        """An answer's body as the request log keeps it (bytes, e.g. files and pages: None)."""
        return None if isinstance(response.body, bytes) else response.body

    def response_headers_for_log(self, response: Response) -> dict[str, str]:
        """An answer's headers as the request log keeps them (e.g. the Retry-After of a 429)."""
        return dict(response.headers)

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
            text = message or explain or "Bad request"
            body = json.dumps(self.protocol_error_body(code, text)).encode()
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
        self._started_mono, self._started_wall = time.monotonic(), wall_time()
        try:
            req = self.read_request()
            if req is not None:
                self._handle(req)
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            self.close_connection = True
        except Exception:
            logger.exception("sandbox: unhandled error on %s %s", self.command, self.path)
            self.close_connection = True
            try:
                self._send(self.internal_error_response())
            except OSError:
                pass

    # -- body ----------------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        limit = self.max_body_bytes
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BodyError(400, "Malformed chunked body.")
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > limit:
                    raise BodyError(413, "Request body too large.")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            raise BodyError(400, "Invalid Content-Length.")
        if length < 0:
            raise BodyError(400, "Invalid Content-Length.")
        if length > limit:
            raise BodyError(413, "Request body too large.")
        return self.rfile.read(length) if length else b""

    def read_request(self) -> Request | None:
        """The request, or None once a control request or an unreadable body was answered."""
        split = urlsplit(self.path)
        path = split.path or "/"
        query = parse_qs(split.query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            raw = self._read_body()
        except BodyError as exc:
            self.close_connection = True
            self._send(self.body_error_response(exc.status, exc.message))
            return None
        req = Request(
            self.command, path, query, headers, raw, request_id=headers.get("x-request-id")
        )
        if path == "/_sandbox" or path.startswith("/_sandbox/"):
            self._send(self.handle_control(req), req.request_id)
            return None
        return req

    # -- faults ----------------------------------------------------------------------------------
    def run_with_fault(self, route, params, req, fault) -> tuple[Response | None, str]:
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
                body = self.fault_status_body(fault.status)
            content_type = JSON_CONTENT_TYPE if not isinstance(body, str) else "text/plain"
            if isinstance(body, str):
                body = body.encode()
            return Response(fault.status, body, dict(fault.headers or {}), content_type), "answered"
        if kind == "rate_limit":
            retry_after = fault.retry_after
            text = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
            body = fault.body or self.fault_rate_limit_body()
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
        return self.custom_fault(route, params, req, fault)

    # -- request log ---------------------------------------------------------------------------
    def start_log_entry(self, req: Request, *, body, identity, **extra) -> dict:
        """Log a request as it arrives (headers redacted; ``body`` already made safe)."""
        state = self.server.state
        return state.request_log.start(
            {
                "method": req.method,
                "path": req.path,
                "query": {k: list(v) for k, v in req.query.items()},
                "body": body,
                "headers": redact_headers(dict(self.headers.items())),
                "identity": identity,
                **extra,
                "requestId": req.request_id,
                "sandboxTime": iso(state.clock.now()),
                "startedAt": self._started_wall,
                "startedMonotonic": self._started_mono,
                "status": None,
                "fault": None,
                "faultId": None,
                "outcome": None,
                "responseSent": None,
                "complete": False,
            }
        )

    def finish_and_answer(
        self,
        entry: dict,
        req: Request,
        response: Response | None,
        *,
        fault,
        outcome: str,
    ) -> int | None:
        """Complete the log entry, then send the answer (or drop the connection)."""
        log = self.server.state.request_log
        status = response.status if response is not None else None
        logged = response is not None
        # The entry is complete before the answer leaves: a client holding its answer always
        # finds the request logged (endedAt is when the answer was ready to send).
        log.finish(
            entry,
            status=status,
            responseSent=response is not None,
            responseBody=self.response_body_for_log(req, response) if logged else None,
            responseHeaders=self.response_headers_for_log(response) if logged else None,
            fault=fault.kind if fault else None,
            faultId=fault.id if fault else None,
            outcome=outcome,
            endedAt=wall_time(),
            endedMonotonic=time.monotonic(),
        )
        try:
            if response is not None:
                self._send(response, req.request_id)
            else:
                self._drop(rst=outcome == "reset")
        except OSError:  # the client went away (e.g. after a stall): nothing to answer
            self.close_connection = True
            log.update(entry, responseSent=False)
        return status

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
        """A streamed body (receipt files): Content-Length, or chunked when ``length`` is None;
        ``cut`` closes the connection after the stream (a body shorter than announced)."""
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
