"""Benchmark 4: a full export of one job through the journal adapter.

A job of 1,000 items (200 with ``--quick``), plus one of a quarter the size to show that the
database work per item is constant, each carried by ``check_exports``' code path
(``company_check_run``: detect, start, validate, read items and export items, book each item in
the journal, report outcomes 100 at a time, send ``completed``). Printed: wall time, Pleo calls by
endpoint against the minimum the API allows (the list of jobs, the job, ``started``, the pages of
items and of export items at 100 a page, one report per 100 items, ``completed``), and database
queries per item.

Baseline: the same Pleo calls made by a bare client against an identical job, with no database,
no adapter and no audit: the ratio is the export's wall time over that.

    .venv/bin/python bench/export.py [--quick] [--database-url URL]
"""

from __future__ import annotations

import math
import time
from collections import Counter

from common import QueryCounter, add_company, header, parser, setup_django

PAGE = 100


def minimum_calls(items: int) -> int:
    pages = max(1, math.ceil(items / PAGE))
    return 1 + 1 + 1 + pages + pages + math.ceil(items / 100) + 1


def export_once(state, sandbox_url: str, items: int):
    from django.db import connection

    from exports.models import Company, JournalEntry, Trigger
    from exports.services.start_flow import company_check_run

    remote, key, saved = add_company(state, sandbox_url, f"Export {items}")
    job = state.create_job(remote.id, items, notify=False)
    state.clear_requests()
    company = Company.objects.select_related("credential").get(pk=saved.company.pk)
    with QueryCounter(connection) as counted:
        started = time.perf_counter()
        result = company_check_run(company=company, trigger=Trigger.COMMAND_LINE)
        seconds = time.perf_counter() - started
    calls = Counter(f"{e['method']} {_template(e['path'], job['id'])}" for e in state.requests())
    assert result.outcome == "completed", (result.outcome, result.error)
    assert JournalEntry.objects.filter(export_job__pleo_job_id=job["id"]).count() == items
    return seconds, calls, counted, remote, key


def _template(path: str, job_id: str) -> str:
    """The endpoint a request went to: the job's id and each receipt file's id as placeholders."""
    if path.startswith("/files/"):
        return "/files/{fileId} (receipts, not Pleo's API)"
    return path.replace(job_id, "{jobId}")


def baseline(state, sandbox_url: str, remote, key, items: int) -> float:
    """The same calls by a bare client: list, get, started, items, export items, reports,
    completed."""
    from exports import pleo

    job = state.create_job(remote.id, items, notify=False)
    config = pleo.ClientConfig(base_url=sandbox_url, page_size=PAGE)
    started = time.perf_counter()
    with pleo.PleoClient(config=config, auth=pleo.ApiKeyAuth(key.key)) as client:
        client.list_export_jobs(company_id=remote.id)
        client.get_export_job(job["id"])
        client.post_export_job_event(job["id"], pleo.JobEvent.STARTED)
        job_items = client.list_export_job_items(job["id"])
        client.list_export_items(job["id"])
        updates = [
            pleo.ItemUpdate.successful(item.accounting_entry_id, external_id=f"JE-{i}")
            for i, item in enumerate(job_items)
        ]
        for start in range(0, len(updates), 100):
            client.update_export_job_items(job["id"], updates[start : start + 100])
        client.post_export_job_event(job["id"], pleo.JobEvent.COMPLETED)
    return time.perf_counter() - started


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    setup_django(args.database_url, PLEO_SANDBOX="1", PLEO_PAGE_SIZE=str(PAGE))
    from pleo_sandbox.server import SandboxServer

    header("Benchmark 4: full export of one job through the journal adapter")
    sandbox = SandboxServer(seed=4)
    sandbox.start()
    big = 200 if args.quick else 1000
    per_item = {}
    try:
        for items in (big // 4, big):
            seconds, calls, counted, remote, key = export_once(sandbox.state, sandbox.url, items)
            base = baseline(sandbox.state, sandbox.url, remote, key, items)
            total = sum(n for call, n in calls.items() if "/files/" not in call)
            per_item[items] = counted.count / items
            print(f"\nJob of {items:,} items")
            print(
                f"  wall time          : {seconds:7.2f} s ({seconds / items * 1000:.2f} ms an item)"
            )
            print(f"  baseline (bare)    : {base:7.2f} s  → ratio {seconds / base:.2f}x")
            print(
                f"  Pleo API calls     : {total} (minimum the API allows: {minimum_calls(items)}; "
                f"receipt downloads listed apart)"
            )
            for call, count in sorted(calls.items()):
                print(f"      {count:5d}  {call}")
            print(
                f"  DB queries         : {counted.count} = {counted.count / items:.2f} an item "
                f"(plus {counted.transactions} BEGIN)"
            )
            if args.shapes:
                counted.show_shapes(per=items)
        small, large = sorted(per_item)
        print(
            f"\nQueries per item, {small:,} → {large:,} items: {per_item[small]:.2f} → "
            f"{per_item[large]:.2f}"
        )
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
