"""Scenario 2: a webhook and a poll racing for the same job within milliseconds: one ``started``.

Each round a new job appears in the sandbox and two threads are released by one barrier: one
delivers the job's signed webhook through the real webhook view and then runs the task it
queued (a worker), the other runs the poll's check of the same company. Both runs go for the
same job within milliseconds of each other (the skew between their first requests to Pleo is
a figure). Pleo accepted ``started`` once per job; the run that lost the race found the company
busy (and asked the holder to look again) or found nothing left to start.
"""

from __future__ import annotations

import base64
import random
import secrets
import threading
import time
import uuid
from collections import Counter

import pytest
from django.db import connections
from django.test import Client

from exports.models import Company, Trigger
from exports.services.companies import company_add_or_update
from exports.services.start_flow import company_check_run
from tests import secrets_registry
from tests.reliability import support
from tests.reliability.inprocess import SyncQueue
from tests.reliability.profile import SIZES, record

pytestmark = pytest.mark.django_db(transaction=True)


def test_webhook_and_poll_racing_for_one_job_start_it_once(pleo_sandbox, monkeypatch, settings):
    settings.PUBLIC_BASE_URL = "https://bridge.example"
    rounds = SIZES["race_rounds"]
    queue = SyncQueue()
    monkeypatch.setattr("exports.services.dispatch.async_task", queue.async_task)
    state = pleo_sandbox.state
    remote = state.add_company("Race")
    key = secrets_registry.register(state.add_api_key(remote.id).key)
    whsec = secrets_registry.register("whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())
    saved = company_add_or_update(
        name="Race",
        pleo_company_id=uuid.UUID(remote.id),
        api_key=key,
        api_base_url=pleo_sandbox.url,
        webhook_secret=whsec,
    )
    seeded = support.Seeded(sandbox=pleo_sandbox, companies=[(remote, saved.company)])
    outcomes: Counter[str] = Counter()
    skews: list[float] = []  # ms between the two runs' starts
    runs_calling_pleo: list[int] = []
    rng = random.Random(2)

    def webhook_side(barrier, body, headers, out):
        try:
            barrier.wait()
            response = Client().post(
                saved.endpoint.path, data=body, content_type="application/json", headers=headers
            )
            out["webhook_status"] = response.status_code
            out["webhook_at"] = time.monotonic()
            out["webhook"] = queue.run_next() if queue.tasks else "coalesced"
        finally:
            connections.close_all()

    def poll_side(barrier, delay, out):
        try:
            company = Company.objects.select_related("credential").get(pk=saved.company.pk)
            barrier.wait()
            time.sleep(delay)  # the webhook's view takes a few ms: let either side win
            out["poll_at"] = time.monotonic()
            out["poll"] = company_check_run(company=company, trigger=Trigger.SCHEDULE).outcome
        finally:
            connections.close_all()

    for _ in range(rounds):
        job_id = seeded.add_job(remote.id, items=1)
        body, headers = support.signed_delivery(whsec, state.get_job(job_id)["job"])
        barrier = threading.Barrier(2)
        out: dict = {}
        before = len(state.requests())
        threads = [
            threading.Thread(target=webhook_side, args=(barrier, body, headers, out)),
            threading.Thread(target=poll_side, args=(barrier, rng.uniform(0, 0.04), out)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert out.get("webhook_status") == 200, out
        outcomes.update([f"webhook:{out['webhook']}", f"poll:{out['poll']}"])
        skews.append(round(abs(out["webhook_at"] - out["poll_at"]) * 1000, 1))
        runs_calling_pleo.append(len({e["requestId"] for e in state.requests()[before:]}))
    figures = support.job_figures(seeded)
    record(
        "webhook_poll_race",
        rounds=rounds,
        outcomes=dict(outcomes),
        rounds_where_both_runs_called_pleo=sum(1 for n in runs_calling_pleo if n > 1),
        max_skew_ms=max(skews),
        median_skew_ms=sorted(skews)[len(skews) // 2],
        **figures,
    )
    support.assert_invariants(figures)
    assert figures["started_posts_sent"] == rounds
    assert figures["final_events"] == rounds
    # The harness's own check that the two sides overlapped (the view takes a few ms, the poll
    # waits 0-40 ms): 200 ms leaves room for scheduling jitter with two test workers on two cores,
    # and is still well inside one run's duration.
    assert sorted(skews)[len(skews) // 2] < 200, "the two runs did not race"
