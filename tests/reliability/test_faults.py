"""Scenario 3: faults from the sandbox, over real HTTP, against the flow run in-process.

Each fault kind is aimed at the calls it matters for: bursts of 500s (on everything), 429 with
``Retry-After`` (honoured, and above the cap: not waited for), stalls past the read timeout
(``PLEO_READ_TIMEOUT`` shrunk to 0.5 s), connections reset, connections refused (the sandbox
stopped and restarted on the same port), and "applied then dropped" on ``started``, on an item
report and on the final event. The company is checked again, as the worker would on the next
trigger, until every job is final. Then, from the sandbox's own log and job records: each job
started once, each item reported once, one final event; no call made more than
``PLEO_MAX_ATTEMPTS`` attempts; the number of requests stays within a small multiple of the
fault-free count (no retry storm).

The storm at the end mixes every kind at random (seeded) over more jobs and companies.
"""

from __future__ import annotations

import random

import pytest

from exports.models import AuditEntry, Company, Trigger
from exports.services.start_flow import company_check_run
from pleo_sandbox.server import SandboxServer
from tests.reliability import support
from tests.reliability.profile import SIZES, Stopwatch, record

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

EVENTS = "/v3/export-job-events"
ITEMS_PATH = "/v3/export-jobs/{jobId}/items"
READ_TIMEOUT = 0.5
MAX_ATTEMPTS = 4
RETRY_AFTER_CAP = 2.0
ITEMS = 3
# A fault-free job costs: list, get, POST started, GET items, GET export items, PUT items,
# POST final, and the list that finds nothing more: 8 requests. Faults may add re-reads and
# retries, bounded per call; more than this many requests per job would be a storm.
REQUESTS_PER_JOB_BOUND = 40


@pytest.fixture
def fast_client(settings):
    settings.PLEO_READ_TIMEOUT = READ_TIMEOUT
    settings.PLEO_CONNECT_TIMEOUT = READ_TIMEOUT
    settings.PLEO_MAX_ATTEMPTS = MAX_ATTEMPTS
    settings.PLEO_BACKOFF_BASE = 0.05
    settings.PLEO_BACKOFF_MAX = 0.2
    settings.PLEO_RETRY_AFTER_CAP = RETRY_AFTER_CAP
    settings.PUBLIC_BASE_URL = "https://bridge.example"


def _check_until_final(seeded, *, max_rounds=12) -> int:
    """Check every company, round after round, until every job is final; returns the rounds."""
    for round_no in range(1, max_rounds + 1):
        for _remote, company in seeded.companies:
            company_check_run(company=Company.objects.get(pk=company.pk), trigger=Trigger.SCHEDULE)
        if seeded.all_final():
            return round_no
    return max_rounds + 1


FAULTS = {
    # 500s on whatever comes next: reads are retried, writes are reconciled by re-reading.
    "burst_500": lambda state: state.add_fault("status", status=500, count=6),
    "burst_503_on_writes": lambda state: [
        state.add_fault("status", "POST", EVENTS, status=503, count=2),
        state.add_fault("status", "PUT", ITEMS_PATH, status=502, count=2),
    ],
    "rate_limit_429": lambda state: state.add_fault("rate_limit", retry_after=1, count=3),
    "rate_limit_429_over_cap": lambda state: state.add_fault("rate_limit", retry_after=60, count=1),
    "stall_past_read_timeout": lambda state: [
        state.add_fault("stall", "GET", "/v3/export-jobs", seconds=1.0, count=1),
        state.add_fault(
            "stall", "POST", EVENTS, body_match={"event": "started"}, seconds=1.0, apply=True
        ),
        state.add_fault("stall", "PUT", ITEMS_PATH, seconds=1.0, count=1),
    ],
    "connection_reset": lambda state: [
        state.add_fault("reset", "GET", "/v3/export-jobs/{jobId}", count=2),
        state.add_fault("reset", "POST", EVENTS, count=1),
    ],
    "applied_then_dropped_started": lambda state: state.add_fault(
        "apply_then_drop", "POST", EVENTS, body_match={"event": "started"}, count=2
    ),
    "applied_then_dropped_item_report": lambda state: state.add_fault(
        "apply_then_drop", "PUT", ITEMS_PATH, count=2
    ),
    "applied_then_dropped_final_event": lambda state: state.add_fault(
        "apply_then_drop", "POST", EVENTS, body_match={"event": "completed"}, count=2
    ),
}


def _assert_bounded(figures: dict, jobs: int) -> None:
    assert figures["max_attempts"] <= MAX_ATTEMPTS, figures
    assert figures["requests"] <= REQUESTS_PER_JOB_BOUND * jobs, figures
    assert figures["started_posts_sent"] <= 3 * jobs, figures  # MAX_START_ATTEMPTS per job


@pytest.mark.parametrize("kind", list(FAULTS))
def test_fault_kind(kind, pleo_sandbox, fast_client):
    n = SIZES["fault_jobs"]
    seeded = support.seed_companies(pleo_sandbox, 1, prefix=f"Fault {kind}")
    remote = seeded.companies[0][0]
    for _ in range(n):
        seeded.add_job(remote.id, items=ITEMS)
    FAULTS[kind](seeded.state)
    watch = Stopwatch()
    rounds = _check_until_final(seeded)
    seconds = watch.seconds()
    log = seeded.state.requests()
    faults_hit = sum(1 for entry in log if entry["fault"])
    figures = support.job_figures(seeded)
    record(f"faults.{kind}", rounds=rounds, faults_hit=faults_hit, seconds=seconds, **figures)
    support.assert_invariants(figures)
    assert figures["final_events"] == n
    assert figures["item_reports"] == n * ITEMS
    assert faults_hit > 0
    _assert_bounded(figures, n)
    if kind == "rate_limit_429":
        # Honoured: the same call is not sent again before Retry-After (1 s) has passed.
        gaps = [
            later["startedMonotonic"] - entry["endedMonotonic"]
            for entry, later in _same_call_pairs(log, status=429)
        ]
        assert gaps and min(gaps) >= 1.0, gaps
    if kind == "rate_limit_429_over_cap":
        # Capped: a Retry-After of 60 s above the 2 s cap is not waited for; the run fails
        # at once, audited, and the next check goes on.
        assert seconds < 30
        assert AuditEntry.objects.filter(step="error", message__contains="cap").exists()


def _same_call_pairs(log: list[dict], *, status: int):
    for i, entry in enumerate(log):
        if entry["status"] != status:
            continue
        for later in log[i + 1 :]:
            if (later["requestId"], later["method"], later["path"]) == (
                entry["requestId"],
                entry["method"],
                entry["path"],
            ):
                yield entry, later
                break


def test_refused_connections(pleo_sandbox, fast_client, caplog):
    """Pleo unreachable (connection refused): the run fails after the bounded attempts, audited
    once however often it is retried; once Pleo is back, the next check finishes every job."""
    n = SIZES["fault_jobs"]
    seeded = support.seed_companies(pleo_sandbox, 1, prefix="Refused")
    remote, company = seeded.companies[0]
    for _ in range(n):
        seeded.add_job(remote.id, items=ITEMS)
    port = pleo_sandbox.port
    pleo_sandbox.stop()
    outcomes = [
        company_check_run(company=Company.objects.get(pk=company.pk), trigger=Trigger.SCHEDULE)
        for _ in range(3)
    ]
    # The client's warning per retried attempt: attempts = retries + 1 per failed run.
    retries = caplog.text.count("failed (could not connect")
    restarted = SandboxServer(port=port, state=pleo_sandbox.state)
    restarted.start()
    try:
        rounds = _check_until_final(seeded)
        figures = support.job_figures(seeded)
    finally:
        restarted.stop()
    errors = AuditEntry.objects.filter(company=company, step="error")
    record(
        "faults.connection_refused",
        failed_runs_while_down=len(outcomes),
        error_audits_while_down=errors.count(),
        retried_attempts_while_down=retries,
        rounds_after_restart=rounds,
        **figures,
    )
    assert {o.outcome for o in outcomes} == {"failed"}
    assert all("unreachable" in o.error for o in outcomes)
    assert errors.count() == 1, "the same failure is audited once, not on every run"
    assert retries == len(outcomes) * (MAX_ATTEMPTS - 1), "bounded attempts per run"
    support.assert_invariants(figures)
    assert figures["final_events"] == n


def test_fault_storm(pleo_sandbox, fast_client):
    """Every kind at random (seeded) over several companies, until every job is final."""
    rng = random.Random(10)
    n = SIZES["storm_jobs"]
    seeded = support.seed_companies(pleo_sandbox, 3, prefix="Storm")
    for i in range(n):
        seeded.add_job(seeded.companies[i % 3][0].id, items=rng.randint(1, 4))
    state = seeded.state
    kinds = [k for k in FAULTS if k != "rate_limit_429_over_cap"]
    watch = Stopwatch()
    rounds = 0
    while not seeded.all_final() and rounds < 40:
        rounds += 1
        for _remote, company in seeded.companies:
            for _ in range(rng.randint(2, 8)):
                FAULTS[rng.choice(kinds)](state)
            company_check_run(company=Company.objects.get(pk=company.pk), trigger=Trigger.SCHEDULE)
            state.clear_faults()
    state.clear_faults()
    rounds_to_settle = 0
    while not seeded.all_final() and rounds_to_settle < 10:
        rounds_to_settle += 1
        _check_until_final(seeded, max_rounds=1)
    seconds = watch.seconds()
    log = state.requests()
    figures = support.job_figures(seeded)
    record(
        "faults.storm",
        rounds_with_faults=rounds,
        rounds_to_settle=rounds_to_settle,
        faults_hit=sum(1 for entry in log if entry["fault"]),
        seconds=seconds,
        **figures,
    )
    support.assert_invariants(figures)
    assert figures["final_events"] == n
    _assert_bounded(figures, n)
