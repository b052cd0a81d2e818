"""Benchmark 5: receipts fetched during an export.

1. A job of 1,000 items (200 with ``--quick``), each with one 200 KB PDF receipt, exported through
   the journal adapter by ``company_check_run`` in this process (the worker): every receipt is
   downloaded, hashed, sniffed and archived (a local folder) before its item is booked. Printed:
   wall time; the same export of an identical job whose items have no receipt; the same downloads
   made by a bare client (``requests``, the same number of threads, bytes read and dropped); the
   ratio of the receipts' share of the export (with − without) to the bare downloads; peak RSS of
   the worker during the export.
2. A single receipt of 30 MB (the default ``RECEIPTS_MAX_BYTES``): the worker's peak RSS growth
   while it is fetched and archived (it must not grow with the file: < 10 MB).

The sandbox runs as its own process (``manage.py pleo_sandbox``), so the memory measured is the
worker's alone; it streams files, and is steered over its control API. ``DEBUG`` is off, as in
production (with it on, Django keeps every query in memory, which the RSS would show).

    .venv/bin/python bench/receipts.py [--quick] [--database-url URL]
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from common import free_port, header, manage, parser, setup_django, start, stop, wait_http

PDF = "application/pdf"


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak() -> None:
    """Reset VmHWM (peak RSS) to the current RSS (Linux: clear_refs 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def control(url: str, method: str, path: str, body=None):
    response = requests.request(method, f"{url}/_sandbox{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json() if response.content else None


def company(url: str, name: str):
    from exports.models import Company
    from exports.services.companies import company_add_or_update

    remote = control(url, "POST", "/companies", {"name": name})["data"]
    key = control(url, "POST", "/api-keys", {"companyId": remote["id"]})["data"]
    saved = company_add_or_update(
        name=name,
        pleo_company_id=uuid.UUID(remote["id"]),
        api_key=key["secret"],
        api_base_url=url,
    )
    return remote, Company.objects.select_related("credential").get(pk=saved.company.pk)


def export(url: str, name: str, items: int, receipts: dict | None):
    from exports.models import JournalEntry, Trigger
    from exports.receipts.models import Receipt
    from exports.services.start_flow import company_check_run

    remote, ours = company(url, name)
    body = {"companyId": remote["id"], "items": items, "notify": False}
    if receipts is not None:
        body["receipts"] = receipts
    job = control(url, "POST", "/jobs", body)["data"]
    reset_peak()
    rss_before = status_kb("VmRSS")
    started = time.perf_counter()
    result = company_check_run(company=ours, trigger=Trigger.COMMAND_LINE)
    seconds = time.perf_counter() - started
    peak = status_kb("VmHWM")
    assert result.outcome == "completed", (result.outcome, result.error)
    booked = JournalEntry.objects.filter(export_job__pleo_job_id=job["id"]).count()
    archived = Receipt.objects.filter(export_job__pleo_job_id=job["id"]).count()
    assert booked == items, booked
    return seconds, rss_before, peak, archived, job["id"]


def bare_downloads(url: str, job_id: str, threads: int) -> tuple[float, int]:
    """The same files by a bare client: GET each, read and drop the bytes."""
    items = control(url, "GET", f"/jobs/{job_id}/export-items")["data"]
    urls = [f["url"] for item in items for f in item["files"]]
    local = threading.local()

    def one(file_url: str) -> int:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        with session.get(file_url, stream=True, timeout=30) as response:
            response.raise_for_status()
            return sum(len(chunk) for chunk in response.iter_content(64 * 1024))

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        total = sum(pool.map(one, urls))
    return time.perf_counter() - started, total


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    archive = tempfile.mkdtemp(prefix="pleo-bench-receipts-")
    env = setup_django(
        args.database_url,
        PLEO_SANDBOX="1",
        PLEO_RATE_LIMIT_PER_MINUTE="0",
        RECEIPTS_ROOT=archive,
        DEBUG="0",  # as in production (DEBUG keeps every query in memory: RSS would say so)
    )
    from django.conf import settings

    header("Benchmark 5: receipts fetched during an export")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sandbox = start(manage("pleo_sandbox", "--port", str(port)), env, "sandbox")
    try:
        wait_http(f"{url}/_sandbox/health")
        threads = int(settings.RECEIPTS_DOWNLOAD_CONCURRENCY)
        print(f"archive: {settings.STORAGES['receipts']['OPTIONS']['location']}")
        print(f"RECEIPTS_DOWNLOAD_CONCURRENCY={threads}")
        export(url, "Warm-up", 5, {"count": 1, "size": 20_000, "type": PDF})

        limit = int(settings.RECEIPTS_MAX_BYTES)
        seconds, before, peak, archived, _ = export(
            url, "One large receipt", 1, {"count": 1, "size": limit, "type": PDF}
        )
        print(f"\nA single receipt of {limit / 2**20:.0f} MB ({archived} archived)")
        print(f"  wall time          : {seconds:7.2f} s")
        print(
            f"  worker RSS         : {before / 1024:.1f} MB before, peak {peak / 1024:.1f} MB "
            f"→ growth {(peak - before) / 1024:.1f} MB"
        )

        items = 200 if args.quick else 1000
        size = 200_000
        with_r, before, peak, archived, job_id = export(
            url, "Receipts", items, {"count": 1, "size": size, "type": PDF}
        )
        without, before_0, peak_0, *_ = export(url, "No receipts", items, {"count": 0})
        bare, total = bare_downloads(url, job_id, threads)
        share = with_r - without
        print(f"\nJob of {items:,} items, one {size // 1000} KB receipt each ({archived} archived)")
        print(f"  export with receipts    : {with_r:7.2f} s ({with_r / items * 1000:.1f} ms/item)")
        print(f"  same export, no receipts: {without:7.2f} s")
        print(f"  receipts' share         : {share:7.2f} s")
        print(
            f"  bare client downloads   : {bare:7.2f} s ({total / 2**20:.0f} MB, {threads} "
            f"threads) → ratio {share / bare:.2f}x"
        )
        print(
            f"  worker RSS              : {before / 1024:.1f} MB before, peak "
            f"{peak / 1024:.1f} MB → growth {(peak - before) / 1024:.1f} MB (without receipts: "
            f"{(peak_0 - before_0) / 1024:.1f} MB)"
        )
    finally:
        stop(sandbox)


if __name__ == "__main__":
    main()
