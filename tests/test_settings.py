"""Settings from the environment: refusal without keys when DEBUG is off, .env handling, SQLite."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests import processes
from tests.processes import ROOT


def _check(env_overrides: dict, cwd=ROOT) -> subprocess.CompletedProcess:
    env = processes.settings_env(
        without=("SECRET_KEY", "CREDENTIALS_ENCRYPTION_KEYS", "DEBUG"), **env_overrides
    )
    return processes.run(processes.manage("check"), env, cwd=cwd)


@pytest.fixture
def no_dotenv(monkeypatch):
    """These checks must not read a developer's local .env: point the project at a copy without."""
    if (ROOT / ".env").exists():
        pytest.skip(
            "a local .env exists in the checkout; its values would be read (env wins only when set)"
        )


def test_debug_off_refuses_to_start_without_secret_key():
    result = _check({"DEBUG": "0", "CREDENTIALS_ENCRYPTION_KEYS": "x"})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_debug_off_refuses_to_start_without_encryption_keys():
    result = _check({"DEBUG": "0", "SECRET_KEY": "s"})
    assert result.returncode != 0
    assert "CREDENTIALS_ENCRYPTION_KEYS is not set" in result.stderr


def test_debug_on_without_keys_still_runs_check():
    result = _check({"DEBUG": "1"})
    assert result.returncode == 0, result.stderr


def test_init_env_creates_private_env_once_and_environment_wins(tmp_path):
    script = (ROOT / "bin" / "init_env.py").read_text()
    project = tmp_path / "project"
    (project / "bin").mkdir(parents=True)
    (project / "bin" / "init_env.py").write_text(script)
    run = lambda: subprocess.run(  # noqa: E731
        [sys.executable, str(project / "bin" / "init_env.py")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run().returncode == 0
    env_file = project / ".env"
    first = env_file.read_text()
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert "SECRET_KEY=" in first and "CREDENTIALS_ENCRYPTION_KEYS=" in first
    assert run().returncode == 0
    assert env_file.read_text() == first  # keys are generated once, never replaced


def test_process_environment_wins_over_dotenv(tmp_path):
    code = (
        "import environ, os; "
        f"environ.Env.read_env({str(tmp_path / '.env')!r}, overwrite=False); "
        "print(os.environ['PLEO_POLL_INTERVAL_MINUTES'])"
    )
    (tmp_path / ".env").write_text("PLEO_POLL_INTERVAL_MINUTES=9\n")
    env = {**os.environ, "PLEO_POLL_INTERVAL_MINUTES": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.stdout.strip() == "3"


@pytest.mark.django_db
def test_sqlite_is_configured_for_a_shared_file():
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite settings only apply on SQLite")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0].lower() == "wal"
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] >= 30000
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    # A file, not memory (pytest-xdist's workers append their id: "….sqlite3_gw0").
    name = Path(connection.settings_dict["NAME"])
    assert name.is_file() and ".sqlite3" in name.name
