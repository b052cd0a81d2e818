"""Benchmark 2: webhook intake under gunicorn. Deliveries per second and latency when concurrent
clients post signed ``export-job.created`` deliveries over loopback, against a bare Django view
that does one insert, served by the same gunicorn settings in the same run.

Each target gets the same load: 16 client threads, each with its own keep-alive session, posting
2,000 requests in all (300 with ``--quick``), each with a new ``webhook-id``, to gunicorn with 4
sync workers, run as in production (``DEBUG`` off). Every answer must be 2xx, and afterwards the
rows are counted: every delivery stored (``WebhookDelivery``), every bare insert there. Target:
at least half the bare view's throughput, zero lost. No worker runs, so two webhook loads:

* **webhook endpoint**: 20 companies; after each company's first delivery its check is queued,
  so later deliveries are coalesced (one joined read and the insert);
* **webhook, each queues**: one delivery per company, so every delivery also writes the
  company's queued marker and queues a check in the broker (the ORM broker: one more insert).

    .venv/bin/python bench/webhook_intake.py [--quick] [--database-url URL]
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid

from common import (
    ROOT,
    free_port,
    gunicorn,
    header,
    parser,
    percentile,
    setup_django,
    start,
    stop,
    wait_http,
)

GUNICORN_WORKERS = "4"
COMPANIES = 20


def hammer(url: str, bodies: list[tuple[dict, bytes]], clients: int):
    import requests

    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    chunks = [bodies[i::clients] for i in range(clients)]

    def client(chunk):
        session = requests.Session()
        mine, bad = [], []
        for headers, body in chunk:
            started = time.perf_counter()
            try:
                response = session.post(url(headers), data=body, headers=headers, timeout=30)
                ok = 200 <= response.status_code < 300
                if not ok:
                    bad.append(f"{response.status_code} {response.text[:100]}")
            except requests.RequestException as exc:
                bad.append(type(exc).__name__)
            mine.append(time.perf_counter() - started)
        session.close()
        with lock:
            latencies.extend(mine)
            failures.extend(bad)

    threads = [threading.Thread(target=client, args=(chunk,)) for chunk in chunks]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, failures


def deliveries(endpoints, n: int) -> list[tuple[dict, bytes]]:
    from exports import webhook_signing

    out = []
    for i in range(n):
        endpoint_uuid, secret, company_id = endpoints[i % len(endpoints)]
        body = json.dumps(
            {
                "data": {
                    "companyId": company_id,
                    "createdAt": "2025-01-01T12:00:00Z",
                    "createdBy": None,
                    "expiresIn": 3600,
                    "id": str(uuid.uuid4()),
                    "numberOfItems": 1,
                    "status": "pending",
                },
                "eventId": str(uuid.uuid4()),
                "eventType": "v1.export-job.created",
            }
        ).encode()
        msg_id = f"msg_{uuid.uuid4().hex}"
        timestamp = str(int(time.time()))
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": webhook_signing.sign(secret, msg_id, timestamp, body),
            "content-type": "application/json",
            "x-endpoint": str(endpoint_uuid),
        }
        out.append((headers, body))
    return out


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    args_clients = 16
    n = 300 if args.quick else 2000
    port = free_port()
    env = setup_django(args.database_url, PLEO_SANDBOX="0", DEBUG="0")
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "intake_settings",
            "PYTHONPATH": f"{ROOT / 'bench'}:{ROOT}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
        }
    )
    from django.db import connection

    from exports.models import Company, WebhookDelivery
    from exports.services.companies import company_add_or_update

    header("Benchmark 2: webhook intake under gunicorn")
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_bare")
        pk = "SERIAL" if connection.vendor == "postgresql" else "INTEGER"
        cursor.execute(f"CREATE TABLE bench_bare (id {pk} PRIMARY KEY, body TEXT NOT NULL)")
    endpoints = []
    for i in range(COMPANIES):
        secret = "whsec_" + base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes[:8]).decode()
        company_id = uuid.uuid4()
        saved = company_add_or_update(
            name=f"Intake {i}",
            pleo_company_id=company_id,
            api_key=f"key-{uuid.uuid4().hex}",
            # No worker runs, so nothing calls Pleo (and a loopback URL is refused without
            # DEBUG or PLEO_SANDBOX: Pleo credentials only go to PLEO_ALLOWED_HOSTS).
            api_base_url="",
            webhook_secret=secret,
        )
        endpoint = saved.company.credential.webhook_endpoint
        endpoints.append((endpoint.uuid, secret, str(company_id)))
    # The "every delivery queues a check" load: one delivery per company, n more companies under
    # the first credential (bulk-created: the benchmark measures receiving, not setting up).
    first_endpoint_uuid, first_secret, _ = endpoints[0]
    credential = Company.objects.get(pleo_company_id=endpoints[0][2]).credential
    cold_ids = [uuid.uuid4() for _ in range(n)]
    Company.objects.bulk_create(
        [
            Company(name=f"Intake cold {i}", pleo_company_id=company_id, credential=credential)
            for i, company_id in enumerate(cold_ids)
        ],
        batch_size=500,
    )
    cold_endpoints = [(first_endpoint_uuid, first_secret, str(c)) for c in cold_ids]

    web = start(gunicorn(port, GUNICORN_WORKERS), env, "gunicorn")
    base_url = f"http://127.0.0.1:{port}"
    results = {}
    try:
        wait_http(f"{base_url}/healthz")
        warm = deliveries(endpoints, 40)
        hammer(lambda h: f"{base_url}/webhooks/pleo/{h['x-endpoint']}/", warm, 4)
        hammer(lambda h: f"{base_url}/bench/bare/", warm, 4)
        stored_before = WebhookDelivery.objects.count()
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM bench_bare")

        load = deliveries(endpoints, n)
        bare = hammer(lambda h: f"{base_url}/bench/bare/", load, args_clients)
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM bench_bare")
            bare_rows = cursor.fetchone()[0]
        results["bare view (one insert)"] = (*bare, bare_rows)
        hook_url = lambda h: f"{base_url}/webhooks/pleo/{h['x-endpoint']}/"  # noqa: E731
        hooks = hammer(hook_url, load, args_clients)
        stored = WebhookDelivery.objects.count() - stored_before
        results["webhook endpoint"] = (*hooks, stored)
        stored_before = WebhookDelivery.objects.count()
        cold = hammer(hook_url, deliveries(cold_endpoints, n), args_clients)
        stored = WebhookDelivery.objects.count() - stored_before
        results["webhook, each queues"] = (*cold, stored)
    finally:
        stop(web)

    print(
        f"\n{n:,} deliveries, {args_clients} concurrent clients, gunicorn {GUNICORN_WORKERS} sync"
    )
    for name, (seconds, latencies, failures, rows) in results.items():
        print(
            f"  {name:24s}: {n / seconds:7.1f} deliveries/s  p50 "
            f"{percentile(latencies, 50) * 1000:6.1f} ms  "
            f"p99 {percentile(latencies, 99) * 1000:6.1f} ms"
            f"  non-2xx {len(failures)}  rows {rows:,} (lost {n - rows})"
        )
        if failures:
            print(f"      first failures: {failures[:3]}")
    bare_rate = n / results["bare view (one insert)"][0]
    for name, label in (
        ("webhook endpoint", "webhook / bare"),
        ("webhook, each queues", "webhook (each queues a check) / bare"),
    ):
        rate = n / results[name][0]
        print(
            f"  ratio {label} throughput: {rate / bare_rate:.2f} "
            f"(target ≥ 0.5: {'met' if rate >= bare_rate / 2 else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
