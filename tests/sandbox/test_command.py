"""``manage.py pleo_sandbox`` as a real process: prints URL and keys, serves, stops on Ctrl-C."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]


def read_until(proc, marker: str, timeout: float = 20) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    raise AssertionError(f"{marker!r} not printed; got {lines!r}")


def start_command(*args: str) -> subprocess.Popen:
    """``manage.py *args`` in DEBUG, unbuffered, with its output piped (also the Xero one's)."""
    env = {
        **os.environ,
        "DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "pleo_integration.settings",
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.subprocess
def test_command_seeds_serves_and_stops_cleanly():
    proc = start_command("pleo_sandbox", "--port", "0", "--seed", "2")
    try:
        lines = read_until(proc, "Press Ctrl-C")
        url = re.search(r"listening on (http://\S+)", lines[0]).group(1)
        companies = [
            re.match(r"company (\S+) .* api_key (\S+) jobs (.+)$", line)
            for line in lines
            if line.startswith("company ")
        ]
        assert len(companies) == 2 and all(companies)
        company_id, api_key, jobs = companies[0].groups()
        response = requests.get(f"{url}/v3/export-jobs", auth=(api_key, ""), timeout=5)
        assert response.status_code == 200
        assert {j["id"] for j in response.json()["data"]} == set(jobs.split())
        assert {j["companyId"] for j in response.json()["data"]} == {company_id}
        assert requests.get(f"{url}/_sandbox/health", timeout=5).json()["seed"] == 2
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Traceback" not in out
    assert "Pleo sandbox stopped." in out
    # API keys are printed on purpose (stdout) but never logged.
    assert api_key not in err
