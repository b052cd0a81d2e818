"""``manage.py xero_sandbox``: run the local Xero sandbox until Ctrl-C.

    DEBUG=1 python manage.py xero_sandbox [--host 127.0.0.1] [--port 8766]
        [--client-id ID --client-secret SECRET --redirect-uri URI]

Prints the base URL, the Accounting API URL and the demo organisations; with ``--redirect-uri``
it registers an OAuth client (``--client-id``/``--client-secret`` or generated ones) and prints
them, so the product's Xero connection can be pointed at the sandbox.
"""

from __future__ import annotations

from pleo_sandbox.management.serving import ServeCommand
from xero_sandbox.server import XeroSandboxServer


class Command(ServeCommand):
    help = "Run the local Xero sandbox (Accounting API, Identity API, OAuth 2.0; in memory)."
    title = "Xero sandbox"
    default_port = 8766

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--client-id", default=None, help="OAuth client id to register.")
        parser.add_argument("--client-secret", default=None, help="Its secret.")
        parser.add_argument(
            "--redirect-uri", action="append", default=[], help="Register an OAuth client."
        )

    def make_server(self, options: dict) -> XeroSandboxServer:
        return XeroSandboxServer(host=options["host"], port=options["port"])

    def announce(self, server: XeroSandboxServer, url: str, options: dict) -> None:
        self.stdout.write(f"Accounting API: {server.api_url}")
        self.stdout.write(f"Control API: {url}/_sandbox/ (see xero_sandbox/README.md)")
        for tenant in server.state.tenants():
            self.stdout.write(f"tenant {tenant.id} {tenant.name} ({tenant.currency})")
        if options["redirect_uri"]:
            client = server.state.add_oauth_client(
                options["client_id"],
                client_secret=options["client_secret"],
                redirect_uris=options["redirect_uri"],
            )
            # A local development secret, printed once for the developer to copy.
            self.stdout.write(f"oauth client {client.client_id} secret {client.client_secret}")
