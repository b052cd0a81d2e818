"""Settings for the test suite: the product's settings with DEBUG on unless the run says otherwise.

Tests run in a clean clone with no ``.env`` and no keys: DEBUG lets everything that does not
touch a secret run; tests that encrypt provide their own keys.
"""

import os

os.environ.setdefault("DEBUG", "1")

import tempfile  # noqa: E402
import uuid  # noqa: E402
from urllib.parse import urlsplit, urlunsplit  # noqa: E402

from django.core.exceptions import ImproperlyConfigured  # noqa: E402

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


# Redis's default number of databases (its ``databases`` setting): 0-15.
REDIS_DATABASES = 16

# One test run's name, set by the first process of the run that loads these settings and
# inherited by the rest: pytest-xdist's workers (started after the controller loaded them) and
# the product processes a test starts (``product_env`` copies the environment).
TEST_RUN_ID = os.environ.setdefault("PLEO_TEST_RUN_ID", uuid.uuid4().hex[:12])


def xdist_worker() -> tuple[int, int]:
    """This process's pytest-xdist worker (``gw1`` → 1) and the run's number of workers; ``(0, 1)``
    outside xdist. Product processes a test starts inherit both variables."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return 0, 1
    return int(worker[2:]), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or int(worker[2:]) + 1)


def per_worker_redis_url(url: str, worker: int = 0, workers: int = 1) -> str:
    """Each pytest-xdist worker its own Redis database (the URL's database number plus the
    worker's, ``gw1`` → +1): one worker's queue purge, queued tasks and budget keys (row ids
    start at 1 in every worker's database) never meet another's. Unchanged outside xdist.

    A base database whose last worker's would be past Redis's 16 is refused here, by every
    worker alike, naming the databases to choose from (Redis would say only "DB index is out of
    range", and only to the test that first used it)."""
    if not url or workers <= 1 and worker == 0:
        return url
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    last = base + workers - 1
    if last >= REDIS_DATABASES:
        raise ImproperlyConfigured(
            f"REDIS_URL names database {base}, and each of the {workers} pytest-xdist workers "
            f"takes its own from there ({base}-{last}); Redis has databases "
            f"0-{REDIS_DATABASES - 1}: choose a database of at most {REDIS_DATABASES - workers} "
            f"in REDIS_URL, or fewer workers (-n)."
        )
    return urlunsplit(parts._replace(path=f"/{base + worker}"))


def per_run_queue_name(name: str, run: str, worker: int, workers: int) -> str:
    """The worker queue's name (django-q2's ``Q_CLUSTER["name"]``) of one test run and xdist
    worker. The Redis broker's list is named after it, and so are the Redis budget's keys
    (``RedisBudget``): two runs on one machine (a developer's and CI's, both on one Redis
    database) neither take each other's tasks nor purge each other's queue
    (``product_env``), nor spend each other's budgets."""
    return f"{name}-test-{run}" + (f"-gw{worker}" if workers > 1 or worker else "")


_worker, _workers = xdist_worker()
Q_CLUSTER = {  # noqa: F405
    **Q_CLUSTER,  # noqa: F405
    "name": per_run_queue_name(Q_CLUSTER["name"], TEST_RUN_ID, _worker, _workers),  # noqa: F405
}
if REDIS_URL:  # noqa: F405
    REDIS_URL = per_worker_redis_url(REDIS_URL, _worker, _workers)  # noqa: F405
    Q_CLUSTER["redis"] = REDIS_URL
