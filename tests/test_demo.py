"""The README's main command with the sandbox: seeded, a job started via a signed webhook, Ctrl-C.

Runs ``manage.py serve`` (what ``bin/serve`` ends in) on a fresh SQLite file, exactly as a
newcomer's first run does, then once more on the same database.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests import processes
from tests.conftest import TEST_ENCRYPTION_KEY

pytestmark = pytest.mark.subprocess


def _env(db_path: Path) -> dict[str, str]:
    return processes.product_process_env(
        f"sqlite:///{db_path}",
        PLEO_SANDBOX="1",
        SECRET_KEY="demo-test-secret-key",
        CREDENTIALS_ENCRYPTION_KEYS=TEST_ENCRYPTION_KEY,
    )


def _pids_with(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and "pytest" not in cmdline:
            pids.append(int(entry.name))
    return pids


def _serve(db_path, tmp_path, name, until, timeout=60):
    port, sandbox_port = processes.free_port(), processes.free_port()
    log_path = tmp_path / f"{name}.log"
    process = processes.start(
        processes.manage("serve", "--port", str(port), "--sandbox-port", str(sandbox_port)),
        _env(db_path),
        log_path,
    )
    try:
        processes.wait_until(
            lambda: until in processes.output(process) or process.poll() is not None,
            timeout=timeout,
            message=f"'{until}' in the output",
        )
        assert process.poll() is None, processes.output(process)[-4000:]
        os.kill(process.pid, signal.SIGINT)  # what Ctrl-C sends
        process.wait(timeout=30)
    except (TimeoutError, subprocess.TimeoutExpired):
        processes.stop(process)
        pytest.fail(f"serve did not reach '{until}' or stop:\n{processes.output(process)[-5000:]}")
    out = processes.output(process)
    processes.stop(process)
    # Every child gone, no port left bound.
    time.sleep(0.2)
    assert _pids_with(f"127.0.0.1:{port}") == []
    assert _pids_with(f"--port {sandbox_port}") == []
    for p in (port, sandbox_port):
        with socket.socket() as sock:
            # SO_REUSEADDR: connections in TIME_WAIT are no process's; a listener still fails.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", p))
            sock.listen()
    return out


@pytest.mark.slow  # the whole demo (about 13 s): .ci/run runs it
def test_main_command_demo_starts_a_job_via_webhook_and_stops_cleanly(tmp_path):
    db_path = tmp_path / "fresh.sqlite3"
    out = _serve(db_path, tmp_path, "first", until="started (via webhook)")
    assert "Created the admin login (shown once)" in out
    assert "Admin: http://127.0.0.1:" in out
    assert "(3 created, 0 already there)" in out
    assert "Traceback" not in out, out[-4000:]

    out = _serve(db_path, tmp_path, "second", until="webhooks subscribed", timeout=40)
    assert "(0 created, 3 already there)" in out
    assert "Created the admin login" not in out
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT COUNT(*) FROM exports_company").fetchone()[0] == 3
        assert db.execute("SELECT COUNT(*) FROM exports_credential").fetchone()[0] == 4  # + OAuth
    assert "Traceback" not in out, out[-4000:]
