"""``manage.py xero_sandbox``: run the local Xero sandbox until Ctrl-C.

    DEBUG=1 python manage.py xero_sandbox [--host 127.0.0.1] [--port 8766]
        [--client-id ID --client-secret SECRET --redirect-uri URI]

Prints the base URL, the Accounting API URL and the demo organisations; with ``--redirect-uri``
it registers an OAuth client (``--client-id``/``--client-secret`` or generated ones) and prints
them, so the product's Xero connection can be pointed at the sandbox.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from xero_sandbox.server import XeroSandboxServer


class Command(BaseCommand):
    help = "Run the local Xero sandbox (Accounting API, Identity API, OAuth 2.0; in memory)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface to bind.")
        parser.add_argument("--port", type=int, default=8766, help="Port (0: any free port).")
        parser.add_argument("--client-id", default=None, help="OAuth client id to register.")
        parser.add_argument("--client-secret", default=None, help="Its secret.")
        parser.add_argument(
            "--redirect-uri", action="append", default=[], help="Register an OAuth client."
        )

    def handle(self, *args, **options) -> None:
        server = XeroSandboxServer(host=options["host"], port=options["port"])
        try:
            url = server.start()
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['host']}:{options['port']}: {exc}")

        def announce() -> None:
            self.stdout.write(f"Xero sandbox listening on {url}")
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
            self.stdout.write("Press Ctrl-C to stop.")
            self.stdout.flush()

        server.serve_until_signalled(announce)
        self.stdout.write("Xero sandbox stopped.")
