"""Run the sandbox over real HTTP: ``SandboxServer(...).start()`` serves in a daemon thread.

    server = SandboxServer(seed=7)
    base_url = server.start()          # e.g. "http://127.0.0.1:54321"
    company = server.state.add_company()
    key = server.state.add_api_key(company.id)
    ...
    server.stop()

Also a context manager (``with SandboxServer() as server: ...``).
"""

from __future__ import annotations

import logging
import selectors
import socket
import socketserver
import threading
import weakref
from http.server import ThreadingHTTPServer

from pleo_sandbox.handler import SandboxRequestHandler
from pleo_sandbox.state import SandboxState

logger = logging.getLogger("pleo_sandbox")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address, state: SandboxState, url_getter) -> None:
        self.state = state
        self._url_getter = url_getter
        self._connections: set[socket.socket] = set()
        self._reset: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._conn_lock = threading.Lock()
        super().__init__(address, SandboxRequestHandler)

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
        logger.exception("pleo sandbox: error handling a connection from %s", client_address)


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class SandboxServer:
    """The Pleo sandbox on ``host:port`` (port 0: an ephemeral port)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        *,
        state: SandboxState | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.state = state or SandboxState(seed=seed)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the sandbox is not started")
        host, port = self._httpd.server_address[:2]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    def start(self) -> str:
        """Bind, serve in a daemon thread and return the base URL."""
        if self._httpd is not None:
            return self.url
        server_cls = _HTTPServer6 if ":" in self.host else _HTTPServer
        self.state.stop_event.clear()
        self.state.webhooks.restart()
        self._httpd = server_cls((self.host, self.port), self.state, lambda: self.url)
        self.port = self._httpd.server_address[1]
        self.state.base_url = self.url
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(
            target=self._httpd.serve_until_stopped,
            args=(self._wake_r,),
            name=f"pleo-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("pleo sandbox listening on %s (seed %s)", self.url, self.state.seed)
        return self.url

    def stop(self) -> None:
        """Stop serving, close the listening socket and open connections, stop webhooks."""
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
        self.state.webhooks.stop()
        logger.info("pleo sandbox on port %s stopped", self.port)

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
