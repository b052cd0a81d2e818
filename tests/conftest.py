"""Shared fixtures. Fixture modules live in tests/fixtures/ and are loaded as plugins here."""

import os

import pytest
from cryptography.fernet import Fernet

from tests import secrets_registry

pytest_plugins = [
    "tests.fixtures.sandbox",
    "tests.fixtures.xero_sandbox",
    "tests.fixtures.services",
    "tests.fixtures.notify",
    "tests.fixtures.receipts",
    "tests.fixtures.webhooks",
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
def _rejection_tally():
    """Each test starts with an empty tally of rejected webhooks, not due for a flush, and with
    the webhook view's own counts per reason at zero."""
    from exports import webhook_views
    from exports.rejections import counter

    counter.reset_for_tests()
    webhook_views.reset_rejection_counts()
    yield
    counter.reset_for_tests()


@pytest.fixture(autouse=True)
def _no_secret_in_logs(caplog):
    """Logs are captured at DEBUG for every test: no secret a test made may appear in them."""
    secrets_registry.start_test()
    yield
    leaked = [s for s in secrets_registry.current() if s in caplog.text]
    assert not leaked, f"secret(s) found in the logs: {[s[:6] + '…' for s in leaked]}"


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch):
    """No test reaches a real host: a name other than localhost does not resolve (as on a
    machine without a network). Saving a credential tests it against Pleo, so a test that does
    not fake Pleo gets "unreachable" everywhere, never a real Pleo answer to a test key."""
    import socket

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        if name and name.lower() != "localhost" and not _is_ip_literal(name):
            raise socket.gaierror(socket.EAI_NONAME, f"tests do not resolve {name}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _is_ip_literal(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=os.environ.get("RUN_SLOW") == "1",
        help="Also run tests marked slow (the reliability scenarios; .ci/run does).",
    )


def pytest_configure(config):
    """Under pytest-xdist, a REDIS_URL whose database leaves no room for one database per worker
    (``settings_test.per_worker_redis_url``) is refused here, before any worker starts, rather
    than by each worker as it starts (xdist restarts them, repeating the message)."""
    workers = getattr(config.option, "numprocesses", None)  # -n; "auto" is not counted here
    if os.environ.get("PYTEST_XDIST_WORKER") or not isinstance(workers, int) or workers < 2:
        return
    from django.core.exceptions import ImproperlyConfigured

    from pleo_integration.settings_test import per_worker_redis_url

    try:
        per_worker_redis_url(os.environ.get("REDIS_URL", ""), 0, workers)
    except ImproperlyConfigured as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(
        reason="slow scenario: run with --run-slow or RUN_SLOW=1 (.ci/run does)"
    )
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture
def sent(monkeypatch):
    """The tasks the product queues, as ``(func, *args)``, instead of queueing them."""
    calls = []
    monkeypatch.setattr(
        "exports.services.dispatch.async_task",
        lambda func, *args, **kw: calls.append((func, *args)),
    )
    return calls


@pytest.fixture
def test_database_url(transactional_db):
    """The test database as a DATABASE_URL, for product processes started by a test."""
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def product_env(test_database_url, settings):
    """Environment for a product subprocess: the test database and the test keys."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "PLEO_SANDBOX")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "pleo_integration.settings_test",
            "DATABASE_URL": test_database_url,
            "CREDENTIALS_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
            "SECRET_KEY": "test-secret-key",
            "DEBUG": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    # A worker started with this environment reads the broker's queue: with Redis, tasks an
    # earlier test left there (queued in this process, signed with its SECRET_KEY, not the
    # subprocess's) would reach it as BadSignature tracebacks. Each such test starts empty. The
    # queue is this run's and xdist worker's own (settings_test): another run's is left alone.
    from django_q.brokers import get_broker

    get_broker().purge_queue()
    return env


@pytest.fixture
def admin_client(client, django_user_model):
    """A client logged in as the superuser "root": pytest-django's fixture of that name, without
    its password hashing (slow, and no test logs in with a password)."""
    user = django_user_model.objects.create(
        username="root", email="root@example.com", is_staff=True, is_superuser=True
    )
    client.force_login(user)
    return client


@pytest.fixture
def fresh_budget():
    """The request budget's backends forgotten before and after the test (a test's settings
    choose its backend)."""
    from exports.services import budget

    budget._backends.clear()
    yield
    budget._backends.clear()
