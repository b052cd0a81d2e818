"""Shared fixtures. Fixture modules live in tests/fixtures/ and are loaded as plugins here."""

import os

import pytest
from cryptography.fernet import Fernet

from tests import secrets_registry

pytest_plugins = [
    "tests.fixtures.sandbox",
    "tests.fixtures.services",
]

# One key for the whole run, so subprocesses started by tests can decrypt what tests stored.
TEST_ENCRYPTION_KEY = os.environ.setdefault(
    "TEST_CREDENTIALS_ENCRYPTION_KEY", Fernet.generate_key().decode()
)


@pytest.fixture(autouse=True)
def _encryption_keys(settings):
    settings.CREDENTIALS_ENCRYPTION_KEYS = [TEST_ENCRYPTION_KEY]


@pytest.fixture(autouse=True)
def _product_clock():
    from exports import clock

    clock.reset()
    yield
    clock.reset()


@pytest.fixture(autouse=True)
def _no_secret_in_logs(caplog):
    """Logs are captured at DEBUG for every test: no secret a test made may appear in them."""
    secrets_registry.start_test()
    yield
    leaked = [s for s in secrets_registry.current() if s in caplog.text]
    assert not leaked, f"secret(s) found in the logs: {[s[:6] + '…' for s in leaked]}"
