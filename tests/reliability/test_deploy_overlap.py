"""Scenario 5 (first half): a deploy, with the old and the new worker running together.

The web process and the "old" worker (configured as the release before this one: no periodic
recovery sweep) run while jobs arrive, each announced by its signed webhook. A third of the way
in, the "new" worker starts beside it; two thirds in, the old one gets SIGTERM (what a deploy
sends) and finishes what it holds; the rest of the jobs arrive with the new worker alone. Every
job is started once, finished once, oldest first per company, with no overlapping runs.
(The scheduler-outage half of the scenario is ``test_scheduler_outage.py``.)
"""

from __future__ import annotations

import time

import pytest

from tests import processes
from tests.reliability import support
from tests.reliability.profile import SIZES, Stopwatch, record

pytestmark = [pytest.mark.slow, pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

COMPANIES = 4


def test_old_and_new_worker_together_still_start_each_job_once(
    pleo_sandbox, product_env, tmp_path, settings
):
    total = SIZES["deploy_jobs"]
    port = processes.free_port()
    base = f"http://127.0.0.1:{port}"
    settings.PUBLIC_BASE_URL = base
    seeded = support.seed_companies(pleo_sandbox, COMPANIES, prefix="Deploy", subscribe=True)
    env = support.product_env(product_env, PUBLIC_BASE_URL=base)
    procs = support.Processes(tmp_path)
    watch = Stopwatch()
    both_running_jobs = 0
    try:
        procs.web(env, port)
        old = procs.qcluster("old-worker", {**env, "RECOVERY_SWEEP_SECONDS": "0"})
        new = None
        for i in range(total):
            if i == total // 3:
                new = procs.qcluster("new-worker", env)
            if i == 2 * total // 3:
                old.terminate()  # the deploy: SIGTERM, the old worker drains and exits
            if new is not None and old.poll() is None:
                both_running_jobs += 1
            remote = seeded.companies[i % COMPANIES][0]
            seeded.add_job(remote.id, items=2, notify=True)
            time.sleep(0.3)
        old.wait(timeout=60)
        processes.wait_until(seeded.all_final, timeout=120, message="every job final")
        seconds = watch.seconds()
        pleo_sandbox.state.webhooks.wait_idle(10)
    finally:
        procs.stop_all()
    figures = support.job_figures(seeded)
    record(
        "deploy_overlap",
        companies=COMPANIES,
        jobs_arriving_while_both_ran=both_running_jobs,
        old_worker_exit_code=old.returncode,
        seconds=seconds,
        **figures,
    )
    support.assert_invariants(figures)
    assert figures["jobs"] == total
    assert figures["started_posts_accepted"] == total
    assert figures["final_events"] == total
    assert both_running_jobs > 0
    assert not procs.tracebacks(), procs.tracebacks()
    support.assert_no_secret_in(
        procs.texts(), seeded.secrets | support.delivery_secrets(pleo_sandbox.state)
    )
