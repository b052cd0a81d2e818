"""``serve``: the README's main command. Web server and worker together, stopped cleanly on Ctrl-C.

Before starting: migrations, ``ensure_schedules`` and a local admin login (printed once). With
``PLEO_SANDBOX=1`` it also starts the local Pleo sandbox and seeds a demo (see
``exports.services.demo``), and points ``PLEO_OAUTH_BASE_URL`` at the sandbox's OAuth server;
without it, the same command runs against Pleo.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

STOP_GRACE_SECONDS = 10


def sandbox_url(sandbox_port: int) -> str:
    return f"http://127.0.0.1:{sandbox_port}"


def serve_environment(
    *, host: str, port: int, sandbox_port: int, environ: dict | None = None
) -> dict[str, str]:
    """What the web server, the worker and the sandbox are started with, on top of the
    environment: ``PUBLIC_BASE_URL`` where we listen (unless configured), and with
    ``PLEO_SANDBOX`` on, ``PLEO_OAUTH_BASE_URL`` at the sandbox's OAuth server (the same server
    as its API), so "Connect to Pleo" goes to the sandbox's consent page, never Pleo's login."""
    environ = os.environ if environ is None else environ
    extra_env: dict[str, str] = {
        # The terminal tells the story: children log warnings unless LOG_LEVEL says otherwise.
        "LOG_LEVEL": environ.get("LOG_LEVEL") or "WARNING",
    }
    if "PUBLIC_BASE_URL" not in environ:
        # Not configured: Pleo (the sandbox) and browsers reach us where we listen.
        extra_env["PUBLIC_BASE_URL"] = f"http://{host}:{port}"
    if settings.PLEO_SANDBOX:
        extra_env["PLEO_OAUTH_BASE_URL"] = sandbox_url(sandbox_port)
    return extra_env


def xero_sandbox_port() -> int:
    """The local Xero's port: ``XERO_SANDBOX_PORT``, else one the system has free now."""
    if os.environ.get("XERO_SANDBOX_PORT"):
        return int(os.environ["XERO_SANDBOX_PORT"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_finish(process: subprocess.Popen, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``process`` (already asked to stop) to end, kill it
    past that, then kill whatever is left of its process group (started with
    ``start_new_session``). True when it had to be killed. The tests stop processes this way."""
    killed = False
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        killed = True
    try:
        os.killpg(process.pid, signal.SIGKILL)  # nothing of its process group survives
    except (ProcessLookupError, PermissionError):
        pass
    return killed


class Command(BaseCommand):
    help = "Set up the database and run the web server and the worker (and the sandbox demo)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--host",
            default=os.environ.get("HOST", "127.0.0.1"),
            help="Address the web server listens on (default: HOST, else 127.0.0.1; 0.0.0.0 "
            "for every interface).",
        )
        parser.add_argument(
            "--port",
            type=int,
            default=int(os.environ.get("PORT", "8000")),
            help="Port of the web server and the admin (default: PORT, else 8000).",
        )
        parser.add_argument(
            "--sandbox-port",
            type=int,
            default=int(os.environ.get("PLEO_SANDBOX_PORT", "8765")),
            help="Port of the local Pleo sandbox, API and OAuth server, started with "
            "PLEO_SANDBOX=1 (default: PLEO_SANDBOX_PORT, else 8765).",
        )
        parser.add_argument(
            "--no-worker", action="store_true", help="Run only the web server (no qcluster)."
        )

    def handle(self, *args, **options):
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.stopping = False
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            self._run(options)
        finally:
            self._stop_children()

    def _on_signal(self, signum, frame):
        self.stopping = True

    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        process = subprocess.Popen(  # noqa: S603  (our own interpreter and manage.py)
            argv,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # Ctrl-C reaches us; we stop the children ourselves
        )
        self.children.append((name, process))
        return process

    def _manage(self, *args: str) -> list[str]:
        return [sys.executable, str(settings.BASE_DIR / "manage.py"), *args]

    def _run(self, options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("ensure_schedules", verbosity=0)
        call_command("ensure_admin")

        base = f"http://{options['host']}:{options['port']}"
        extra_env = serve_environment(
            host=options["host"], port=options["port"], sandbox_port=options["sandbox_port"]
        )
        xero_env = {}
        if settings.PLEO_SANDBOX:
            # The local Xero beside the Pleo sandbox, unless a Xero app is configured.
            from exports.services.demo import xero_demo_environment

            xero_port = xero_sandbox_port()
            xero_env = xero_demo_environment(xero_port=xero_port, environ=os.environ)
            extra_env.update(xero_env)
        for name in ("PUBLIC_BASE_URL", "PLEO_OAUTH_BASE_URL", *xero_env):
            if name in extra_env:  # this process (the demo's seeding) uses them too
                setattr(settings, name, extra_env[name])

        demo = None
        if settings.PLEO_SANDBOX:
            from exports.services.demo import Demo

            demo = Demo(
                command=self,
                sandbox_port=options["sandbox_port"],
                spawn=self._spawn,
                manage=self._manage,
                xero_env=xero_env,
            )
            demo.start(env=extra_env)

        self._spawn(
            "web",
            self._manage("runserver", f"{options['host']}:{options['port']}", "--noreload"),
            extra_env,
        )
        if not options["no_worker"]:
            self._spawn("worker", self._manage("qcluster"), extra_env)

        self.stdout.write(self.style.SUCCESS(f"Admin: {base}/admin/  (Ctrl-C stops everything)"))
        if demo is not None:
            demo.seed(public_base_url=base)

        while not self.stopping:
            for name, process in self.children:
                if process.poll() is not None:
                    raise CommandError(f"The {name} process exited ({process.returncode}).")
            if demo is not None:
                demo.step()
            time.sleep(0.5)
        self.stdout.write("Stopping ...")
        self.stdout.flush()

    def _stop_children(self):
        # SIGTERM to each child's main process: qcluster stops its own worker processes.
        for _, process in reversed(self.children):
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for name, process in reversed(self.children):
            if process_finish(process, max(0.1, deadline - time.monotonic())):
                self.stderr.write(f"The {name} process did not stop in time; it was killed.")
