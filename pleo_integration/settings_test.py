"""Settings for the test suite: the product's settings with DEBUG on unless the run says otherwise.

Tests run in a clean clone with no ``.env`` and no keys: DEBUG lets everything that does not
touch a secret run; tests that encrypt provide their own keys.
"""

import os

os.environ.setdefault("DEBUG", "1")

import tempfile  # noqa: E402

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
