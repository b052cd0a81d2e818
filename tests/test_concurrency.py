"""Several OS processes running ``check_exports`` at once against one sandbox.

From the sandbox's own request log: every job got exactly one accepted ``started``, jobs were
started oldest first per company, and no two runs (by ``X-Request-Id``) of one company overlapped.
Runs on the suite's database: SQLite with ``bin/test``, PostgreSQL in ``.ci/run``.
"""

from __future__ import annotations

import subprocess
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from exports.models import Company
from exports.services.companies import company_add_or_update
from tests import processes
from tests.reliability.support import overlapping_runs

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

PROCESSES = 4
COMPANIES = 20
JOBS_PER_COMPANY = 3


def _seed(sandbox, api_base_url):
    state = sandbox.state
    base = datetime.now(UTC) - timedelta(minutes=30)
    created = {}
    for n in range(COMPANIES):
        company = state.add_company(f"Concurrent {n}")
        key = state.add_api_key(company.id)
        company_add_or_update(
            name=f"Concurrent {n}",
            pleo_company_id=uuid.UUID(company.id),
            api_key=key.key,
            api_base_url=api_base_url,
        )
        for j in range(JOBS_PER_COMPANY):
            # Created in an order the sandbox does not list them in (switch: shuffled).
            job = state.create_job(
                company.id, items=1, created_at=base + timedelta(seconds=10 * j + n), notify=False
            )
            created[job["id"]] = (company.id, job["createdAt"])
    return created


def _round(env, tmp_path, round_no):
    running = [
        processes.start(
            processes.manage("check_exports", "--json"), env, tmp_path / f"r{round_no}-p{i}.log"
        )
        for i in range(PROCESSES)
    ]
    for process in running:
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            processes.stop(process)
            pytest.fail(f"check_exports hung:\n{processes.output(process)[-3000:]}")
    for process in running:
        out = processes.output(process)
        assert "Traceback" not in out, out[-3000:]
        processes.stop(process)


@pytest.mark.slow  # a multi-process proof (about 5 s): .ci/run runs it
def test_parallel_check_exports_start_each_job_once_oldest_first(
    pleo_sandbox, product_env, tmp_path
):
    state = pleo_sandbox.state
    state.set_switches(list_order="shuffled")
    jobs = _seed(pleo_sandbox, pleo_sandbox.url)
    assert Company.objects.count() == COMPANIES

    for round_no in range(JOBS_PER_COMPANY + 2):
        _round(product_env, tmp_path, round_no)
        if all(state.get_job(job_id)["job"]["status"] == "completed" for job_id in jobs):
            break
    log = state.requests()
    assert {state.get_job(job_id)["job"]["status"] for job_id in jobs} == {"completed"}
    finals = [
        e["body"]["jobId"]
        for e in log
        if e["path"] == "/v3/export-job-events"
        and e["status"] == 202
        and e["body"]["event"] == "completed"
    ]
    assert sorted(finals) == sorted(jobs), "exactly one accepted final event per job"

    # Exactly one accepted `started` per job.
    started = [
        e
        for e in log
        if e["method"] == "POST"
        and e["path"] == "/v3/export-job-events"
        and isinstance(e["body"], dict)
        and e["body"].get("event") == "started"
    ]
    accepted = defaultdict(list)
    for entry in started:
        if entry["status"] == 202:
            accepted[entry["body"]["jobId"]].append(entry)
    assert set(accepted) == set(jobs), "every job started"
    assert all(len(entries) == 1 for entries in accepted.values())

    # Oldest first per company.
    by_company = defaultdict(list)
    for job_id, entries in accepted.items():
        company_id, created_at = jobs[job_id]
        by_company[company_id].append((entries[0]["startedMonotonic"], created_at))
    for company_id, starts in by_company.items():
        order = [created for _, created in sorted(starts)]
        assert order == sorted(order), f"company {company_id} not oldest first"

    # No two runs of one company overlapped (runs identified by X-Request-Id).
    company_of_job = {job_id: company_id for job_id, (company_id, _) in jobs.items()}
    runs_seen, overlaps = overlapping_runs(log, company_of_job)
    assert overlaps == 0, "two runs of one company overlapped"
    assert runs_seen >= COMPANIES
