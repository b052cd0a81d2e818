"""Run the sandbox over real HTTP: ``SandboxServer(...).start()`` serves in a daemon thread.

    server = SandboxServer(seed=7)
    base_url = server.start()          # e.g. "http://127.0.0.1:54321"
    company = server.state.add_company()
    key = server.state.add_api_key(company.id)
    ...
    server.stop()

Also a context manager (``with SandboxServer() as server: ...``). The threaded HTTP server
itself is generic (:mod:`pleo_sandbox.httpbase`, shared with ``xero_sandbox``).
"""

from __future__ import annotations

from pleo_sandbox.handler import SandboxRequestHandler
from pleo_sandbox.httpbase import BaseSandboxServer
from pleo_sandbox.state import SandboxState


class SandboxServer(BaseSandboxServer):
    """The Pleo sandbox on ``host:port`` (port 0: an ephemeral port)."""

    handler_class = SandboxRequestHandler
    state_class = SandboxState
    label = "pleo sandbox"
    state: SandboxState

    def on_start(self) -> None:
        self.state.webhooks.restart()

    def on_stop(self) -> None:
        self.state.webhooks.stop()
