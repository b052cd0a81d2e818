"""The environments tests and benchmarks give the product processes they start."""

from tests import processes


def test_a_product_process_env_takes_the_callers_overrides(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")
    env = processes.product_process_env("sqlite:////tmp/x.sqlite3", DEBUG="0", LOG_LEVEL="WARNING")
    assert env["DEBUG"] == "0"  # the benchmarks measure with DEBUG off
    assert env["LOG_LEVEL"] == "WARNING"
    assert env["DATABASE_URL"] == "sqlite:////tmp/x.sqlite3"
    assert env["DJANGO_SETTINGS_MODULE"] == "pleo_integration.settings"
    assert "REDIS_URL" not in env
    assert processes.product_process_env("sqlite://")["DEBUG"] == "1"
