"""The shape of a ``manage.py <sandbox>`` command (generic: the Xero sandbox's uses it too): bind
``--host``/``--port``, say where it listens and what it holds, serve until Ctrl-C, say it stopped.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError


class ServeCommand(BaseCommand):
    """Subclasses set ``title`` and ``default_port`` and define :meth:`make_server` (may raise
    ``CommandError`` for bad options) and :meth:`announce` (lines after "listening on")."""

    title = "Sandbox"
    default_port = 0

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface to bind.")
        parser.add_argument(
            "--port", type=int, default=self.default_port, help="Port (0: any free port)."
        )

    def make_server(self, options: dict):
        raise NotImplementedError

    def announce(self, server, url: str, options: dict) -> None:
        """What the server holds, written once it listens."""

    def handle(self, *args, **options) -> None:
        server = self.make_server(options)
        try:
            url = server.start()
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['host']}:{options['port']}: {exc}")

        def announce() -> None:
            self.stdout.write(f"{self.title} listening on {url}")
            self.announce(server, url, options)
            self.stdout.write("Press Ctrl-C to stop.")
            self.stdout.flush()

        server.serve_until_signalled(announce)
        self.stdout.write(f"{self.title} stopped.")
