"""End to end with real processes: web server and ``qcluster`` worker, against the sandbox.

A signed webhook from the sandbox reaches the web process, which stores and enqueues; the worker
runs the flow and starts the job in the sandbox. On the suite's database (SQLite with the ORM
broker under ``bin/test``; PostgreSQL in ``.ci/run``), and with the Redis broker.
"""

from __future__ import annotations

import uuid

import pytest

from exports.models import AuditEntry, WebhookDelivery
from exports.services.companies import company_add_or_update
from exports.services.subscriptions import webhooks_subscribe
from tests import processes

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def product(pleo_sandbox, product_env, tmp_path, settings):
    """Start web + worker; returns a callable taking extra env (e.g. REDIS_URL)."""
    started = []

    def start(**extra_env):
        port = processes.free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**product_env, "PUBLIC_BASE_URL": base, "Q_WORKERS": "1", **extra_env}
        settings.PUBLIC_BASE_URL = base
        web = processes.start(
            processes.manage("runserver", f"127.0.0.1:{port}", "--noreload"),
            env,
            tmp_path / "web.log",
        )
        started.append(web)
        worker = processes.start(processes.manage("qcluster"), env, tmp_path / "worker.log")
        started.append(worker)
        processes.wait_http(f"{base}/healthz")
        return base, web, worker

    yield start
    for process in started:
        processes.stop(process)


def _company(pleo_sandbox):
    state = pleo_sandbox.state
    remote = state.add_company("E2E Company")
    key = state.add_api_key(remote.id)
    saved = company_add_or_update(
        name="E2E Company",
        pleo_company_id=uuid.UUID(remote.id),
        api_key=key.key,
        api_base_url=pleo_sandbox.url,
    )
    webhooks_subscribe(credential=saved.company.credential)
    return remote, saved.company


def _started_by_webhook(pleo_sandbox, product, **env):
    base, web, worker = product(**env)
    remote, company = _company(pleo_sandbox)
    job = pleo_sandbox.state.create_job(remote.id, items=1)

    def job_started():
        # Pleo's status changes before the worker commits its audit row: wait for both (on a
        # loaded machine the gap is long enough for the assertions below to miss the row).
        status = pleo_sandbox.state.get_job(job["id"])["job"]["status"]
        return (
            status != "pending"
            and AuditEntry.objects.filter(company=company, step="started").exists()
        )

    try:
        processes.wait_until(job_started, timeout=45, message="job started by the worker")
    except TimeoutError:
        pytest.fail(
            "job not started.\nweb:\n"
            + processes.output(web)[-3000:]
            + "\nworker:\n"
            + processes.output(worker)[-5000:]
        )
    started = [
        e
        for e in pleo_sandbox.state.requests("POST", "/v3/export-job-events")
        if e["body"].get("event") == "started"
    ]
    assert [e["status"] for e in started] == [202]
    delivery = WebhookDelivery.objects.get(company=company)
    assert delivery.pleo_job_id == uuid.UUID(job["id"])
    entry = AuditEntry.objects.get(company=company, step="started")
    assert entry.trigger == "webhook"
    assert entry.worker and entry.worker != AuditEntry.objects.none()
    for process in (web, worker):
        assert "Traceback" not in processes.output(process), processes.output(process)[-4000:]


def test_signed_webhook_starts_the_job_through_the_worker(pleo_sandbox, product):
    _started_by_webhook(pleo_sandbox, product)


@pytest.mark.redis
def test_signed_webhook_starts_the_job_with_the_redis_broker(pleo_sandbox, product, redis_url):
    _started_by_webhook(pleo_sandbox, product, REDIS_URL=redis_url)


def test_webhook_while_the_company_is_busy_is_not_lost(
    pleo_sandbox, product, product_env, tmp_path
):
    """A check_exports run holds the company (its items read is slowed down); a webhook for a new
    job reaches the worker meanwhile, which finds the company busy. The new job still starts."""
    base, web, worker = product()
    remote, company = _company(pleo_sandbox)
    worker_log = tmp_path / "worker.log"
    state = pleo_sandbox.state
    first = state.create_job(remote.id, items=1, notify=False)
    state.add_fault("latency", "GET", "/v3/export-jobs/{jobId}/items", seconds=4, count=1)
    holder = processes.start(
        processes.manage("check_exports", "--json"), product_env, tmp_path / "holder.log"
    )
    try:
        processes.wait_until(
            lambda: state.get_job(first["id"])["job"]["status"] == "in_progress",
            timeout=20,
            message="the holder started the first job",
        )
        second = state.create_job(remote.id, items=1)  # signed webhook -> web -> worker: busy
        processes.wait_until(
            lambda: "is busy (another run holds its lease)" in worker_log.read_text(),
            timeout=20,
            message="the worker ran the webhook's check and found the company busy",
        )
        processes.wait_until(
            lambda: state.get_job(second["id"])["job"]["status"] == "completed",
            timeout=30,
            message="the second job finished",
        )
        holder.wait(timeout=30)
    finally:
        processes.stop(holder)
    # The webhook's check was picked up (its marker recorded as the queue's progress).
    company.refresh_from_db()
    assert company.check_picked_queued_at is not None
    assert worker_log.read_text().count("is busy (another run holds its lease)") == 1
    started = [
        e["body"]["jobId"]
        for e in state.requests("POST", "/v3/export-job-events")
        if e["body"].get("event") == "started" and e["status"] == 202
    ]
    assert started == [first["id"], second["id"]]
