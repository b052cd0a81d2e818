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

ROOT = Path(__file__).resolve().parent.parent
MANAGE = str(ROOT / "manage.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(*args: str) -> list[str]:
    return [sys.executable, MANAGE, *args]


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
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    try:
        os.killpg(process.pid, signal.SIGKILL)  # anything of its group left behind
    except (ProcessLookupError, PermissionError):
        pass
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
