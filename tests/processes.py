"""Starting product processes (command line, worker, web server) from tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from exports.management.commands.serve import process_finish

ROOT = Path(__file__).resolve().parent.parent
MANAGE = str(ROOT / "manage.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(*args: str) -> list[str]:
    return [sys.executable, MANAGE, *args]


def child_env(*, without: tuple[str, ...] = (), **variables: str) -> dict[str, str]:
    """This process's environment for a child, less the variables named in ``without`` (a name
    ending in ``_`` drops every variable it begins), with ``variables`` set."""
    prefixes = tuple(name for name in without if name.endswith("_"))
    names = set(without) - set(prefixes)
    kept = {
        key: value
        for key, value in os.environ.items()
        if key not in names and not (prefixes and key.startswith(prefixes))
    }
    return {**kept, **variables}


def settings_env(*, without: tuple[str, ...] = (), **variables: str) -> dict[str, str]:
    """:func:`child_env` for a child that reads the product's settings afresh
    (``pleo_integration.settings``), a developer's local ``.env`` not counting."""
    return child_env(
        without=without,
        DJANGO_SETTINGS_MODULE="pleo_integration.settings",
        DOTENV_FILE="/nonexistent/.env",
        **variables,
    )


def product_process_env(database_url: str, **variables: str) -> dict[str, str]:
    """:func:`child_env` for a product process on its own database (``database_url``), in
    development mode, unbuffered, with no broker or public URL of this process's; ``variables``
    may override any of these (the benchmarks run with ``DEBUG`` off)."""
    defaults = {
        "DJANGO_SETTINGS_MODULE": "pleo_integration.settings",
        "DATABASE_URL": database_url,
        "DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
    }
    return child_env(without=("REDIS_URL", "PUBLIC_BASE_URL"), **{**defaults, **variables})


def run(argv: list[str], env: dict, *, timeout: float = 60, cwd=ROOT):
    """``argv`` run to its end (in the repository unless ``cwd``), its output captured as text."""
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def start(argv: list[str], env: dict, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "wb")  # noqa: SIM115  (closed by stop())
    process = subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    process._log_file = log  # type: ignore[attr-defined]
    process._log_path = log_path  # type: ignore[attr-defined]
    return process


def stop(process: subprocess.Popen, timeout: float = 15) -> None:
    # SIGTERM to the main process only: it stops its own children (qcluster's sentinel does).
    if process.poll() is None:
        process.terminate()
    process_finish(process, timeout)  # then anything of its group left behind
    log = getattr(process, "_log_file", None)
    if log:
        log.close()


def kill_group(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGKILL to the process and every process of its group (a lost machine: no handler, no
    ``finally``, no commit), then reap it. :func:`stop` still closes its log."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=timeout)


def output(process: subprocess.Popen) -> str:
    path = getattr(process, "_log_path", None)
    return Path(path).read_text(errors="replace") if path else ""


def run_together(
    argvs: list[list[str]], env: dict, log_dir: Path, *, marker: str, timeout: float = 60
) -> list[list[str]]:
    """One process per ``argvs`` entry, started together (logs in ``log_dir``) and waited for;
    returns, per process, the words after ``marker`` on the line it printed starting with it."""
    started = [
        start(argv, env, log_dir / f"{marker.lower()}-{i}.log") for i, argv in enumerate(argvs)
    ]
    results = []
    try:
        for process in started:
            process.wait(timeout=timeout)
            out = output(process)
            line = next((ln for ln in out.splitlines() if ln.startswith(marker)), None)
            assert line is not None, out[-3000:]
            results.append(line.split()[1:])
    finally:
        for process in started:
            stop(process)
    return results


def gunicorn(port: int, workers: int) -> list[str]:
    """The command line of the product's web server as deployed: gunicorn on ``port``."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "pleo_integration.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def wait_until(predicate, timeout: float, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{message} not reached within {timeout} s")
