"""Benchmark 3: the cost of polling. One tick over N active companies with nothing pending.

For each N (1,000 and 10,000; 200 and 1,000 with ``--quick``):

* **in-process queue** — the tick, then the ORM broker's own dequeue, the task and the monitor's
  save and acknowledgement, exactly as ``qcluster`` runs them, in this process, so every database
  query (enqueue, claim and acknowledgement included) is counted: wall time, Pleo calls per
  company (target exactly 1), database queries per company (target ≤ 8, flat as N grows);
* **real worker** — the same tick worked off by a real ``qcluster`` (ORM broker): wall time and
  the peak resident memory of its processes (target < 200 MB a worker process);
* **baseline** — the same Pleo calls (one list per company) made by a bare client in a loop, no
  database, no queue. The ratio is tick wall time / baseline wall time.

The tick is measured warm (a first tick creates each credential's request-budget row; its figures
are printed too). ``PLEO_POLL_SLICES=1``: the whole round at once (spreading moves the same work
over the interval; the cost per company is the same).

    .venv/bin/python bench/polling.py [--quick] [--database-url URL]
"""

from __future__ import annotations

import importlib
import time

from common import (
    QueryCounter,
    header,
    make_companies,
    manage,
    parser,
    peak_rss_mb,
    process_tree,
    setup_django,
    start,
    stop,
    wait_until,
)

BATCH_SIZE = "25"


def run_tick_in_process():
    """One tick and its tasks through the ORM broker, in this process. Returns (seconds, tasks,
    the QueryCounter)."""
    from django.db import connection
    from django.utils import timezone
    from django_q.brokers import get_broker
    from django_q.monitor import save_task
    from django_q.signing import SignedPackage
    from django_q.utils import close_old_django_connections

    from exports import tasks

    broker = get_broker()
    done = 0
    with QueryCounter(connection) as captured:
        started = time.perf_counter()
        tasks.poll_tick()
        while True:
            got = broker.dequeue()  # the claim: SELECT + compare-and-set UPDATE
            if not got:
                break
            for ack_id, payload in got:
                task = SignedPackage.loads(payload)
                module, _, name = task["func"].rpartition(".")
                func = getattr(importlib.import_module(module), name)
                if not task.get("sync", False):
                    close_old_django_connections()  # as the worker does before each task
                result = func(*task["args"], **task["kwargs"])
                task.update(result=result, success=True, stopped=timezone.now(), ack_id=ack_id)
                save_task(task, broker)
                broker.acknowledge(task.pop("ack_id"))
                done += 1
        seconds = time.perf_counter() - started
    return seconds, done, captured


def baseline(sandbox_url: str, pairs) -> float:
    from exports.pleo import ApiKeyAuth, ClientConfig, PleoClient

    config = ClientConfig(base_url=sandbox_url)
    started = time.perf_counter()
    for remote, key in pairs:
        with PleoClient(config=config, auth=ApiKeyAuth(key.key)) as client:
            client.list_export_jobs(company_id=remote.id)
    return time.perf_counter() - started


def run_real_worker(env, state, n: int) -> tuple[float, float, float]:
    """The tick worked off by a real qcluster. Returns (seconds, max worker MB, cluster MB)."""
    from django.db.models import Q
    from django_q.models import OrmQ

    from exports import clock, tasks
    from exports.models import Company

    worker = start(manage("qcluster"), {**env, "Q_WORKERS": "1"}, f"qcluster-{n}")
    try:
        time.sleep(3)  # the cluster is up (it sweeps once at spawn)
        state.clear_requests()
        round_start = clock.now()
        started = time.perf_counter()
        tasks.poll_tick()
        wait_until(
            lambda: (
                not OrmQ.objects.exists()
                and not Company.objects.filter(
                    Q(last_check_at__lt=round_start) | Q(last_check_at__isnull=True)
                ).exists()
            ),
            timeout=max(120, n / 20),
            interval=0.2,
            message="every company checked",
        )
        seconds = time.perf_counter() - started
        pids = process_tree(worker.pid)
        sizes = [peak_rss_mb(pid) for pid in pids]
        return seconds, max(sizes), sum(sizes)
    finally:
        stop(worker)


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    env = setup_django(
        args.database_url,
        PLEO_POLL_SLICES="1",
        PLEO_POLL_BATCH_SIZE=BATCH_SIZE,
        PLEO_SANDBOX="1",
    )
    from exports.models import Company
    from pleo_sandbox.server import SandboxServer

    header("Benchmark 3: polling cost (one tick, nothing pending)")
    sandbox = SandboxServer(seed=3)
    sandbox.start()
    state = sandbox.state
    state.request_log.max_entries = 50_000
    sizes = [200, 1000] if args.quick else [1000, 10000]
    pairs = []
    rows = []
    try:
        for n in sizes:
            pairs += make_companies(state, sandbox.url, n - len(pairs), prefix=f"Poll{n}")
            assert Company.objects.filter(active=True).count() == n
            cold = run_tick_in_process()  # first tick: budget rows are created
            state.clear_requests()
            seconds, batches, counted = run_tick_in_process()
            queries = counted.count
            pleo_calls = len(state.requests())
            base = baseline(sandbox.url, pairs)
            real_seconds, worker_mb, cluster_mb = run_real_worker(env, state, n)
            rows.append((n, seconds, queries, batches, pleo_calls, base, cold))
            control = counted.control
            print(
                f"\nN = {n:,} companies ({batches} tasks of up to {BATCH_SIZE})\n"
                f"  tick, in-process queue : {seconds:7.2f} s  "
                f"({seconds / n * 1000:.2f} ms a company)\n"
                f"  Pleo calls per company : {pleo_calls / n:.2f}\n"
                f"  DB queries per company : {queries / n:.2f} "
                f"(enqueue, claim and ack included; first tick {cold[2].count / n:.2f}; "
                f"plus {control.get('BEGIN', 0) / n:.2f} BEGIN, "
                f"{control.get('COMMIT', 0) / n:.2f} COMMIT, "
                f"{(control.get('SAVEPOINT', 0) + control.get('RELEASE', 0)) / n:.2f} "
                f"SAVEPOINT/RELEASE, {control.get('ROLLBACK', 0) / n:.2f} ROLLBACK)\n"
                f"  baseline (bare client) : {base:7.2f} s  → ratio {seconds / base:.2f}x\n"
                f"  tick, real qcluster    : {real_seconds:7.2f} s  → ratio "
                f"{real_seconds / base:.2f}x\n"
                f"  qcluster peak memory   : {worker_mb:.0f} MB the largest process, "
                f"{cluster_mb:.0f} MB the cluster\n"
                f"  DB statements per company, by kind (warm tick, in-process):"
            )
            counted.show(per=n)
        if len(rows) == 2:
            (n1, _, q1, *_), (n2, _, q2, *_) = rows
            print(
                f"\nQueries per company, N={n1:,} → N={n2:,}: {q1 / n1:.2f} → {q2 / n2:.2f} "
                f"(flat: {abs(q2 / n2 - q1 / n1) < 0.5})"
            )
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
