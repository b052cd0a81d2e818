"""The start-flow, lifecycle and webhook end-to-end tests again, against Pleo's other readings.

Pleo's documents disagree on two things the product must read generously: an expired job's
status (``failed`` with ``job_expired``, or ``expired``) and the case of error types
(``INVALID_EXPORT_JOB_STATUS_CHANGE`` or ``invalid_export_job_status_change``). The sandbox serves
either (its ``expired_status`` and ``error_type_case`` switches); these reruns start every sandbox
of a child pytest run with one of them on (``PLEO_SANDBOX_TEST_SWITCHES``, read by the
``pleo_sandbox`` fixture). About a minute each: under ``--run-slow``.
"""

import os
import subprocess
import sys

import pytest

from tests.processes import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

SUITES = [
    "tests/test_start_flow.py",
    "tests/test_lifecycle.py",
    "tests/test_lifecycle_items.py",
    "tests/test_lifecycle_reporting.py",
    "tests/test_lifecycle_deadlines.py",
    "tests/test_lifecycle_final.py",
    "tests/test_pleo_tolerance_lifecycle.py",
    "tests/test_webhooks.py",
    "tests/test_webhook_rejections.py",
    "tests/test_webhook_dispatch.py",
    "tests/test_webhook_reprocess.py",
    "tests/test_worker_e2e.py",
]


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "switches", ["expired_status=1", "error_type_case=lower"], ids=["expired", "lower-case"]
)
def test_the_flow_suites_pass_with_the_switch_on(switches):
    # The child runs on the embedded default: the switches are about Pleo, not the database, and
    # a child on the parent's PostgreSQL would fight it for the same test database.
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["PLEO_SANDBOX_TEST_SWITCHES"] = switches
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]
