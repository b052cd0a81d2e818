"""Run the Xero sandbox over real HTTP: ``XeroSandboxServer().start()`` serves in a daemon thread.

    server = XeroSandboxServer()
    base_url = server.start()            # e.g. "http://127.0.0.1:54321"
    client = server.state.add_oauth_client(redirect_uris=["http://localhost/cb"])
    tokens = server.state.oauth_issue_tokens(client)
    ...
    server.stop()

The threaded HTTP server is :class:`pleo_sandbox.httpbase.BaseSandboxServer` (shared).
"""

from __future__ import annotations

from pleo_sandbox.httpbase import BaseSandboxServer
from xero_sandbox.handler import XeroRequestHandler
from xero_sandbox.state import XeroState


class XeroSandboxServer(BaseSandboxServer):
    handler_class = XeroRequestHandler
    state_class = XeroState
    label = "xero sandbox"
    state: XeroState

    @property
    def api_url(self) -> str:
        """The Accounting API's base URL (``…/api.xro/2.0``)."""
        return f"{self.url}/api.xro/2.0"
