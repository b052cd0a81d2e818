"""``manage.py xero_sandbox`` as a real process: prints its URLs, tenants and OAuth client,
serves, stops on SIGTERM."""

from __future__ import annotations

import re
import signal

import pytest
import requests
from django.core.management import get_commands

from tests.sandbox.test_command import read_until, start_command


def test_the_command_is_installed_in_debug():
    # settings_test runs with DEBUG on, which installs the app (as XERO_SANDBOX=1 would).
    assert get_commands()["xero_sandbox"] == "xero_sandbox"


@pytest.mark.slow
@pytest.mark.subprocess
def test_command_serves_and_stops_cleanly():
    args = ["--port", "0", "--redirect-uri", "http://localhost/cb", "--client-id", "CLI"]
    proc = start_command("xero_sandbox", *args)
    try:
        lines = read_until(proc, "Press Ctrl-C")
        url = re.search(r"listening on (http://\S+)", lines[0]).group(1)
        assert any(line.startswith("tenant ") for line in lines)
        client = re.search(r"oauth client CLI secret (\S+)", "\n".join(lines))
        assert client is not None
        health = requests.get(f"{url}/_sandbox/health", timeout=5)
        assert health.json()["ok"] is True
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "Xero sandbox stopped." in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
