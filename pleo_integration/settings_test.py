"""Settings for the test suite: the product's settings with DEBUG on unless the run says otherwise.

Tests run in a clean clone with no ``.env`` and no keys: DEBUG lets everything that does not
touch a secret run; tests that encrypt provide their own keys.
"""

import os

os.environ.setdefault("DEBUG", "1")

import tempfile  # noqa: E402
from urllib.parse import urlsplit, urlunsplit  # noqa: E402

from pleo_integration.settings import *  # noqa: E402,F403

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not memory: tests that start the product in subprocesses (worker, command line)
    # must open the same test database.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.environ.get("SQLITE_TEST_NAME")
        or os.path.join(tempfile.gettempdir(), f"pleo-export-bridge-test-{os.getpid()}.sqlite3")
    }

# The fake Pleo hosts of the tests that fake HTTP at the transport (``responses``): allowed like
# Pleo's own, so those tests go through the same allow-list check as production does.
PLEO_ALLOWED_HOSTS = [*PLEO_ALLOWED_HOSTS, "pleo.test", "api.example.test", "auth.example.test"]  # noqa: F405

# The receipt archive of a test run: a directory of its own (shared with the product processes a
# test starts), never the checkout's var/receipts.
STORAGES["receipts"] = {  # noqa: F405
    **STORAGES["receipts"],  # noqa: F405
    "OPTIONS": {
        "location": os.environ.get("TEST_RECEIPTS_DIR")
        or os.environ.setdefault(
            "TEST_RECEIPTS_DIR", tempfile.mkdtemp(prefix="pleo-export-bridge-receipts-")
        )
    },
}

# Tests create users with passwords in many fixtures: the production hasher (PBKDF2, a million
# iterations) costs ~0.3-0.7 s a user on a 2-core machine, for nothing a test checks. Product
# processes started with the production settings (``pleo_integration.settings``) keep it.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def per_worker_redis_url(url: str) -> str:
    """Under pytest-xdist, each worker its own Redis database (the URL's database number plus the
    worker's, ``gw1`` → +1): one worker's queue purge, queued tasks and budget keys (row ids
    start at 1 in every worker's database) never meet another's. Unchanged outside xdist. Product
    processes a test starts inherit ``PYTEST_XDIST_WORKER`` and land on the same database."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not url or not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or 0) + int(worker[2:])
    return urlunsplit(parts._replace(path=f"/{database}"))


if REDIS_URL:  # noqa: F405
    REDIS_URL = per_worker_redis_url(REDIS_URL)  # noqa: F405
    Q_CLUSTER["redis"] = REDIS_URL  # noqa: F405
