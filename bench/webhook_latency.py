"""Benchmark 1: webhook to started. How long from the moment Pleo (the sandbox) sends a signed
``export-job.created`` delivery until the sandbox receives our ``started`` for that job.

The service runs as in production: gunicorn (2 workers) and one ``qcluster`` worker, first with
the ORM broker (it polls every ``Q_CLUSTER["poll"]`` = 0.5 s), then with the Redis broker. Jobs
are created one after another over ten companies (200 jobs; 20 with ``--quick``); each latency
is the sandbox's own wall-clock stamps: delivery attempt start → ``POST /v3/export-job-events``
(``started``) arrival. Each job is created once the run that carried the previous one has ended
(no lease held, no check queued): the latency of a job arriving at an idle service.

Baseline, same run: the Pleo calls the worker makes before ``started`` (list the company's jobs,
read the job, post ``started``) made directly by a bare client on a fresh job. Targets: p50 within
5x the baseline plus the broker's polling interval (ORM), within 5x the baseline (Redis).

    .venv/bin/python bench/webhook_latency.py [--quick] [--redis-url URL]
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime

from common import (
    free_port,
    gunicorn,
    header,
    manage,
    parser,
    percentile,
    setup_django,
    start,
    stop,
    summary_ms,
    wait_http,
    wait_until,
)

COMPANIES = 10


def _t(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def measure(state, remotes, jobs: int) -> list[float]:
    latencies = []
    for i in range(jobs):
        remote = remotes[i % len(remotes)]
        # Only this job's requests are looked at: an empty log keeps the waiting below (a scan
        # every 5 ms, in the sandbox's process) from slowing the sandbox's answers.
        state.clear_requests()
        job = state.create_job(remote.id, 1, notify=True)

        def started(job_id=job["id"]):
            return [
                e
                for e in state.requests("POST", "/v3/export-job-events")
                if e["body"].get("jobId") == job_id and e["body"].get("event") == "started"
            ]

        entry = wait_until(started, 60, 0.005, f"job {i} started")[0]
        delivery = next(
            d
            for d in state.webhook_deliveries()
            if d.get("jobId") == job["id"] and d.get("attempt", 1) == 1
        )
        latencies.append(_t(entry["startedAt"]) - _t(delivery["startedAt"]))
        # Let the 1-item job finish, and the run that carried it end, before the next job: each
        # latency is that of a job arriving at an idle service (as the baseline's calls are),
        # not the tail of the previous run (its last list, audit and lease release).
        wait_until(
            lambda job_id=job["id"]: state.get_job(job_id)["job"]["status"] != "in_progress",
            60,
            0.01,
            f"job {i} finished",
        )
        wait_until(_worker_idle, 60, 0.005, f"run of job {i} ended")
    return latencies


def _worker_idle() -> bool:
    from django.db.models import Q

    from exports.models import Company

    return not Company.objects.filter(
        Q(lease_token__isnull=False) | Q(check_queued_at__isnull=False)
    ).exists()


def baseline(state, sandbox_url, remote, key, jobs: int) -> list[float]:
    from exports import pleo

    config = pleo.ClientConfig(base_url=sandbox_url)
    out = []
    for _ in range(jobs):
        job = state.create_job(remote.id, 1, notify=False)
        started = time.perf_counter()
        with pleo.PleoClient(config=config, auth=pleo.ApiKeyAuth(key.key)) as client:
            client.list_export_jobs(company_id=remote.id)
            client.get_export_job(job["id"])
            client.post_export_job_event(job["id"], pleo.JobEvent.STARTED)
        out.append(time.perf_counter() - started)
        with pleo.PleoClient(config=config, auth=pleo.ApiKeyAuth(key.key)) as client:
            client.post_export_job_event(
                job["id"],
                pleo.JobEvent.FAILED,
                failure_reason="benchmark baseline",
                failure_reason_type=pleo.JobFailureReasonType.INTEGRATION_UNUSABLE,
            )
    return out


def run_variant(env, state, remotes, jobs, extra_env) -> list[float]:
    port = int(env["BENCH_PORT"])
    variant = {**env, **extra_env, "Q_WORKERS": "1"}
    web = start(
        gunicorn(port, 2), variant, f"web-{extra_env.get('REDIS_URL') and 'redis' or 'orm'}"
    )
    worker = start(manage("qcluster"), variant, "worker")
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        time.sleep(3)  # the worker is up
        measure(state, remotes[:2], 2)  # warm-up (connections, imports)
        return measure(state, remotes, jobs)
    finally:
        stop(worker)
        stop(web)


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    port = free_port()
    env = setup_django(
        args.database_url,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        PLEO_SANDBOX="1",
        DEBUG="0",  # as in production (DEBUG keeps every query in memory)
        ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    env["BENCH_PORT"] = str(port)
    from exports.services.companies import company_add_or_update
    from exports.services.subscriptions import webhooks_subscribe
    from pleo_sandbox.server import SandboxServer

    header("Benchmark 1: webhook → started latency")
    sandbox = SandboxServer(seed=1)
    sandbox.start()
    state = sandbox.state
    jobs = 20 if args.quick else 200
    remotes, keys = [], []
    try:
        for i in range(COMPANIES):
            remote = state.add_company(f"Latency {i}")
            key = state.add_api_key(remote.id)
            saved = company_add_or_update(
                name=f"Latency {i}",
                pleo_company_id=uuid.UUID(remote.id),
                api_key=key.key,
                api_base_url=sandbox.url,
            )
            webhooks_subscribe(credential=saved.company.credential)
            remotes.append(remote)
            keys.append(key)
        extra = state.add_company("Baseline")
        extra_key = state.add_api_key(extra.id)
        base = baseline(state, sandbox.url, extra, extra_key, jobs)
        print(f"\nbaseline (bare client: list, get, started): {summary_ms(base)}")
        results = {"ORM broker": run_variant(env, state, remotes, jobs, {})}
        try:
            import redis

            redis.Redis.from_url(args.redis_url, socket_connect_timeout=1).ping()
            results["Redis broker"] = run_variant(
                env, state, remotes, jobs, {"REDIS_URL": args.redis_url}
            )
        except Exception as exc:  # no Redis here: say so, measure the rest
            print(f"(Redis broker skipped: {type(exc).__name__} at {args.redis_url})")
        base_p50 = percentile(base, 50)
        for name, values in results.items():
            p50 = percentile(values, 50)
            target = 5 * base_p50 + (0.5 if name.startswith("ORM") else 0)
            print(
                f"{name:12s}: {summary_ms(values)}\n"
                f"              p50 / baseline p50 = {p50 / base_p50:.1f}x; target p50 ≤ "
                f"{target * 1000:.0f} ms: {'met' if p50 <= target else 'NOT met'}"
            )
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
