"""Scenario 1: eight product processes over many companies and jobs, on PostgreSQL.

Two ``qcluster`` workers (two worker processes each), the web process receiving the sandbox's
signed webhooks, and five ``check_exports`` processes kept running side by side: eight product
processes in all. Half of the jobs are a backlog waiting before anything starts (listed by the
sandbox in shuffled order, created at staggered times); the rest arrive while everything runs,
each announced by its webhook, while the poll tick queues every company every few seconds.

From the sandbox's own request log and job records: exactly one accepted ``started`` per job and
no more ``started`` POSTs than jobs times the flow's bound; every job finished with one final
event; each company's jobs started oldest first; no two runs of one company overlapping (runs
told apart by ``X-Request-Id``); no journal entry twice; no secret in any process's DEBUG log.

PostgreSQL only: eight processes writing one SQLite file would measure SQLite's single writer,
not the product (``tests/test_concurrency.py`` runs four processes on SQLite in ``bin/test``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from exports.services.job_start import MAX_START_ATTEMPTS
from exports.tasks import poll_tick
from tests import processes
from tests.reliability import support
from tests.reliability.profile import SIZES, Stopwatch, record

pytestmark = [
    pytest.mark.slow,
    pytest.mark.subprocess,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

CHECK_EXPORTS_PROCESSES = 5
POLL_EVERY_SECONDS = 3.0


def test_eight_processes_start_each_job_once_oldest_first_without_overlap(
    on_postgres, pleo_sandbox, product_env, tmp_path, settings
):
    companies, per_company = SIZES["load_companies"], SIZES["load_jobs_per_company"]
    backlog = per_company // 2 or 1
    port = processes.free_port()
    base = f"http://127.0.0.1:{port}"
    settings.PUBLIC_BASE_URL = base
    settings.PLEO_POLL_SLICES = 1
    state = pleo_sandbox.state
    state.set_switches(list_order="shuffled")
    seeded = support.seed_companies(pleo_sandbox, companies, prefix="Load", subscribe=True)
    start = datetime.now(UTC) - timedelta(minutes=30)
    for j in range(backlog):
        for n, (remote, _company) in enumerate(seeded.companies):
            seeded.add_job(remote.id, items=2, created_at=start + timedelta(seconds=60 * j + n))
    arriving = [
        remote.id for _ in range(per_company - backlog) for remote, _company in seeded.companies
    ]
    env = support.product_env(product_env, PUBLIC_BASE_URL=base, Q_WORKERS=2, PLEO_POLL_SLICES=1)
    procs = support.Processes(tmp_path)
    watch = Stopwatch()
    cli_runs = 0
    try:
        procs.web(env, port)
        procs.qcluster("worker-a", env)
        procs.qcluster("worker-b", env)
        clis: list = []
        last_poll = 0.0
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            clis = [p for p in clis if p.poll() is None]
            while len(clis) < CHECK_EXPORTS_PROCESSES:
                clis.append(
                    procs.start("check_exports", processes.manage("check_exports", "--json"), env)
                )
                cli_runs += 1
            for _ in range(min(len(arriving), max(1, companies // 10))):
                seeded.add_job(arriving.pop(0), items=2, notify=True)  # webhook -> web -> queue
            if time.monotonic() - last_poll > POLL_EVERY_SECONDS:
                poll_tick()
                last_poll = time.monotonic()
            if not arriving and seeded.all_final():
                break
            time.sleep(0.5)
        finished_seconds = watch.seconds()
        for process in clis:
            process.wait(timeout=120)
        state.webhooks.wait_idle(10)
    finally:
        procs.stop_all()
    figures = support.job_figures(seeded)
    deliveries = state.webhook_deliveries()
    record(
        "concurrency",
        companies=companies,
        product_processes=3 + CHECK_EXPORTS_PROCESSES,
        check_exports_runs=cli_runs,
        webhook_deliveries=len(deliveries),
        webhook_deliveries_2xx=sum(1 for d in deliveries if (d["status"] or 0) // 100 == 2),
        seconds_to_all_final=finished_seconds,
        **figures,
    )
    assert figures["jobs"] == companies * per_company
    support.assert_invariants(figures)
    assert figures["started_posts_accepted"] == figures["jobs"]
    assert figures["started_posts_sent"] <= figures["jobs"] * MAX_START_ATTEMPTS
    assert figures["final_events"] == figures["jobs"]
    assert figures["runs"] >= companies
    assert not procs.tracebacks(), procs.tracebacks()
    support.assert_no_secret_in(procs.texts(), seeded.secrets | support.delivery_secrets(state))
