"""``manage.py pleo_sandbox``: run the local Pleo sandbox until Ctrl-C.

    DEBUG=1 python manage.py pleo_sandbox [--host 127.0.0.1] [--port 8765] [--seed N]

Prints the base URL; with ``--seed N`` it seeds N companies (each with an API key and a couple of
pending jobs, deterministic for a given N) and prints their company ids and API keys.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from pleo_sandbox.server import SandboxServer


class Command(BaseCommand):
    help = "Run the local Pleo Export API sandbox (in-memory, for development and tests)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface to bind.")
        parser.add_argument("--port", type=int, default=8765, help="Port (0: any free port).")
        parser.add_argument(
            "--seed",
            type=int,
            default=None,
            metavar="N",
            help="Seed N companies, each with an API key and pending jobs (also the data seed).",
        )
        parser.add_argument(
            "--jobs-per-company", type=int, default=2, help="Pending jobs per seeded company."
        )

    def handle(self, *args, **options) -> None:
        seed = options["seed"]
        if seed is not None and seed < 0:
            raise CommandError("--seed must be 0 or more")
        server = SandboxServer(host=options["host"], port=options["port"], seed=seed)
        try:
            url = server.start()
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['host']}:{options['port']}: {exc}")

        def announce() -> None:
            self.stdout.write(f"Pleo sandbox listening on {url}")
            self.stdout.write(f"Control API: {url}/_sandbox/ (see pleo_sandbox/README.md)")
            if seed:
                seeded = server.state.seed_companies(
                    seed, jobs_per_company=options["jobs_per_company"]
                )
                for entry in seeded:
                    company = entry["company"]
                    self.stdout.write(
                        f"company {company['id']} ({company['name']}, {company['currency']}) "
                        f"api_key {entry['apiKey']} jobs {' '.join(entry['jobIds'])}"
                    )
            self.stdout.write("Press Ctrl-C to stop.")
            self.stdout.flush()

        server.serve_until_signalled(announce)
        self.stdout.write("Pleo sandbox stopped.")
