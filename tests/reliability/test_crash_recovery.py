"""Scenario 4: the worker killed with SIGKILL at each stage boundary, then restarted.

A ``qcluster`` runs with ``PLEO_CRASH_AT=<point>`` (``exports.crashpoints``): every worker process
kills itself the first (or n-th) time it reaches the point, so each company's run dies there, in
parallel across companies. Once every company has crashed, the whole cluster is killed (SIGKILL to
its process group, like a lost machine) and a fresh cluster starts at once, without the crash
point. No schedule exists in the test database: recovery can only come from the worker's own
sweep (at spawn, and periodically while it runs), not from the scheduler's cycle.

After the restart every job reaches a final state, ``started`` was never accepted twice, no item
was reported twice, no journal entry is duplicated. The lease is 3 s (renewed every 1 s) so the
dead runs' leases lapse quickly; the time from restart to the last job final is a figure.
"""

from __future__ import annotations

import time

import pytest
from django_q.models import Schedule

from exports.crashpoints import POINTS
from exports.models import Trigger
from exports.services.dispatch import company_check_enqueue
from tests import processes
from tests.reliability import support
from tests.reliability.profile import SIZES, Stopwatch, record

pytestmark = [pytest.mark.slow, pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

ITEMS = 3
# The n-th time a worker process reaches the point: the 2nd item, so one item is already done.
NTH = {"mid_items": 2, "after_adapter_call": 2}
FAST_RECOVERY = {
    "COMPANY_LEASE_SECONDS": 3,
    "COMPANY_LEASE_RENEW_SECONDS": 1,
    "RECOVERY_SWEEP_SECONDS": 1,
}


@pytest.mark.parametrize("point", POINTS)
def test_worker_killed_at_each_stage_boundary_recovers(point, pleo_sandbox, product_env, tmp_path):
    assert not Schedule.objects.exists()  # recovery cannot come from the scheduler
    n = SIZES["crash_companies"]
    seeded = support.seed_companies(pleo_sandbox, n, prefix=f"Crash {point}")
    for remote, _company in seeded.companies:
        seeded.add_job(remote.id, items=ITEMS)
    spec = f"{point}:{NTH[point]}" if point in NTH else point
    procs = support.Processes(tmp_path)
    try:
        crashing = procs.qcluster(
            "crashing",
            support.product_env(product_env, PLEO_CRASH_AT=spec, Q_WORKERS=2, **FAST_RECOVERY),
        )
        for _remote, company in seeded.companies:
            company_check_enqueue(company_id=company.pk, trigger=Trigger.SCHEDULE)
        try:
            processes.wait_until(
                lambda: procs.crashes() >= n, timeout=60, message=f"{n} crashes at {point}"
            )
        except TimeoutError:
            pytest.fail(f"workers did not crash at {point}:\n{procs.texts()}")
        crashes = procs.crashes()
        processes.kill_group(crashing)  # the machine is gone: nothing of the old cluster survives
        unfinished_after_crash = sum(
            1 for status in seeded.statuses().values() if status not in support.TERMINAL
        )
        restart = Stopwatch()
        procs.qcluster("restarted", support.product_env(product_env, **FAST_RECOVERY))
        try:
            processes.wait_until(seeded.all_final, timeout=60, message="every job final")
        except TimeoutError:
            pytest.fail(
                f"jobs not final after restart: {seeded.statuses()}\n"
                + "\n".join(f"--- {k}\n{v[-4000:]}" for k, v in procs.texts().items())
            )
        recovery_seconds = restart.seconds()
        time.sleep(0.5)  # let the last run release its lease and write its audit
    finally:
        procs.stop_all()
    figures = support.job_figures(seeded)
    record(
        f"crash_recovery.{point}",
        crash_spec=spec,
        companies=n,
        crashes=crashes,
        unfinished_after_crash=unfinished_after_crash,
        recovery_seconds_after_restart=recovery_seconds,
        **figures,
    )
    support.assert_invariants(figures)
    assert figures["final_events"] == n
    assert figures["item_reports"] == n * ITEMS
    assert figures["journal_entries"] == n * ITEMS
    assert unfinished_after_crash == n  # every point is before the final event
    assert recovery_seconds < 30, "recovery waited for the scheduler's cycle"
    assert not procs.tracebacks(), procs.tracebacks()
    support.assert_no_secret_in(procs.texts(), seeded.secrets)
