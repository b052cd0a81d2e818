"""Scenario 8: a Hypothesis state machine over triggers, Pleo outcomes, crashes and the clock.

Rules: a new job (with or without its signed webhook, through the real webhook view), the poll
tick, a manual "Check now", a foreground check, the recovery sweep, the worker taking the next
queued task, a Pleo outcome armed for the next matching call (2xx, 422, 429, 5xx, a timeout, or
applied-then-dropped; on ``started``, the final event, an item report, the job list, the job, the
job's items), a worker crash at any ``exports.crashpoints`` point (simulated in-process: the run
dies there and its lease is left to lapse, see ``inprocess.crash_at``), and the clock moving on
(product and sandbox clocks together). The queue is synchronous (``inprocess.SyncQueue``); the
sandbox runs in this process over real HTTP. The database and the sandbox are reset between
examples.

Invariants, after every step:
* at most one owner per job: Pleo accepted ``started`` at most once per job, and a job we hold
  as ours was started by us, not by the other integration;
* ``started`` only on a pending job: every ``started`` Pleo accepted (202, or applied and the
  answer dropped) found the job pending at that moment (the sandbox's job events say so);
* statuses only move forward: a job's status in Pleo and in our mirror never goes back, and an
  item final in Pleo never changes again (reported once);
and at the end of each example, after the faults are cleared and the clock, the sweep and the
poll have been let run: every job that was pending at the start is finished, owned by a live
lease, or legitimately blocked (in progress with the other integration, or pending behind one).
"""

from __future__ import annotations

import base64
import secrets
import uuid

import pytest
from django.test import Client
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from exports import clock
from exports.crashpoints import POINTS
from exports.models import (
    AuditEntry,
    Company,
    Credential,
    ExportItemRecord,
    ExportJob,
    JournalEntry,
    JournalLine,
    Trigger,
    WebhookDelivery,
)
from exports.receipts.models import Receipt
from exports.services.companies import company_add_or_update
from exports.services.dispatch import company_check_enqueue
from exports.services.start_flow import company_check_run
from exports.services.sweep import leases_sweep_stale
from tests import secrets_registry
from tests.reliability.inprocess import SimulatedCrash, SyncQueue, crash_at
from tests.reliability.profile import PROFILE, SIZES, Stopwatch, record
from tests.reliability.support import signed_delivery

EVENTS = "/v3/export-job-events"
RANK = {"pending": 0, "in_progress": 1, "failed": 2, "completed": 2, "completed_with_errors": 2}
FINAL_ITEM = {"successful", "failed", "abandoned"}
LEASE_SECONDS = 30
OTHER = "other-integration"

TARGETS = {
    "started": {"method": "POST", "path": EVENTS, "body_match": {"event": "started"}},
    "final_event": {"method": "POST", "path": EVENTS, "body_match": {"event": "completed"}},
    "item_report": {"method": "PUT", "path": "/v3/export-jobs/{jobId}/items"},
    "job_list": {"method": "GET", "path": "/v3/export-jobs"},
    "job": {"method": "GET", "path": "/v3/export-jobs/{jobId}"},
    "job_items": {"method": "GET", "path": "/v3/export-jobs/{jobId}/items"},
}
OUTCOMES = ["2xx", "422", "429", "5xx", "timeout", "applied_then_dropped"]


def _arm(state, outcome: str, target: str, apply_late: bool) -> None:
    where = TARGETS[target]
    if outcome == "2xx":
        return
    if outcome == "422":
        if target == "started":
            state.add_fault("other_integration_starts")  # Pleo moves first: our POST gets 422
            return
        error = (
            "INVALID_EXPORT_JOB_STATUS_CHANGE"
            if where["path"] == EVENTS
            else "EXPORT_JOB_STATUS_UNPROCESSABLE"
        )
        state.add_fault("status", status=422, body={"type": error, "message": "No."}, **where)
    elif outcome == "429":
        state.add_fault("rate_limit", retry_after=0, **where)
    elif outcome == "5xx":
        state.add_fault("status", status=503, **where)
    elif outcome == "timeout":
        state.add_fault("stall", seconds=0.25, apply=apply_late, **where)
    elif outcome == "applied_then_dropped":
        state.add_fault("apply_then_drop", **where)


class World:
    """What survives between examples: two companies in the sandbox and in our database."""

    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox
        self.state = sandbox.state
        self.queue = SyncQueue()
        self.client = Client()
        self.remote_ids: list[str] = []
        self.keys: list[str] = []
        self.companies: list[Company] = []
        self.endpoints = []
        self.whsecs: list[str] = []
        for i in range(2):
            remote = self.state.add_company(f"Machine {i}")
            key = secrets_registry.register(self.state.add_api_key(remote.id).key)
            whsec = secrets_registry.register(
                "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
            )
            saved = company_add_or_update(
                name=f"Machine {i}",
                pleo_company_id=uuid.UUID(remote.id),
                api_key=key,
                api_base_url=sandbox.url,
                webhook_secret=whsec,
            )
            self.remote_ids.append(remote.id)
            self.keys.append(key)
            self.whsecs.append(whsec)
            self.companies.append(saved.company)
            self.endpoints.append(saved.endpoint)
        self.identities = set()

    def reset(self) -> None:
        clock.reset()
        self.queue.tasks.clear()
        self.state.reset()
        self.identities = set()
        for i, remote_id in enumerate(self.remote_ids):
            self.state.add_company(f"Machine {i}", company_id=remote_id)
            self.identities.add(self.state.add_api_key(remote_id, key=self.keys[i]).identity)
        AuditEntry.objects.prune_older_than(clock.now().replace(year=9999))
        JournalLine.objects.all().delete()
        JournalEntry.objects.all().delete()
        Receipt.objects.all().delete()  # the archive's index protects the records it names
        ExportItemRecord.objects.all().delete()
        WebhookDelivery.objects.all().delete()
        ExportJob.objects.all().delete()
        Credential.objects.update(status=Credential.Status.OK, last_error="")
        Company.objects.update(
            lease_token=None,
            lease_expires_at=None,
            lease_holder="",
            recheck_requested=False,
            recheck_trigger="",
            work_pending=False,
            check_queued_at=None,
            next_run_not_before=None,
            last_check_at=None,
            last_check_outcome="",
            last_check_error="",
        )

    def company(self, index: int) -> Company:
        return Company.objects.select_related("credential").get(pk=self.companies[index].pk)

    def deliver_webhook(self, index: int, job: dict) -> int:
        body, headers = signed_delivery(self.whsecs[index], job)
        response = self.client.post(
            self.endpoints[index].path, data=body, content_type="application/json", headers=headers
        )
        return response.status_code


def _machine(world: World, stats: dict):
    state = world.state

    class ExportMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            world.reset()
            self.jobs: dict[str, int] = {}
            self.pending_at_start: set[str] = set()
            self.rank: dict[str, int] = {}
            self.local_rank: dict[str, int] = {}
            self.final_items: dict[tuple[str, str], str] = {}
            stats["examples"] += 1

        def _new_job(self, index: int, items: int) -> dict:
            job = state.create_job(world.remote_ids[index], items, notify=False)
            self.jobs[job["id"]] = index
            return job

        @initialize(first=st.integers(0, 2), second=st.integers(0, 2))
        def jobs_at_start(self, first, second):
            for index, count in enumerate((first, second)):
                for _ in range(count):
                    self.pending_at_start.add(self._new_job(index, 2)["id"])

        # --- triggers ---------------------------------------------------------------------

        @rule(index=st.integers(0, 1), items=st.integers(1, 3), webhook=st.booleans())
        def new_job(self, index, items, webhook):
            job = self._new_job(index, items)
            if webhook:
                assert world.deliver_webhook(index, job) == 200

        @rule()
        def poll(self):
            from exports.tasks import poll_tick

            poll_tick()

        @rule(index=st.integers(0, 1))
        def manual_check(self, index):
            company_check_enqueue(company_id=world.companies[index].pk, trigger=Trigger.MANUAL)

        @rule(index=st.integers(0, 1))
        def foreground_check(self, index):
            company_check_run(company=world.company(index), trigger=Trigger.COMMAND_LINE)

        @rule()
        def sweep(self):
            leases_sweep_stale()

        # No precondition on the queue: whether a task is queued depends on timing (Pleo's
        # answers against a 0.15 s read timeout), and hypothesis needs the choice of rules to be
        # the same when it replays an example. An empty queue makes this step a no-op.
        @rule()
        def worker_takes_next_task(self):
            if world.queue.tasks:
                world.queue.run_next()
                stats["tasks"] += 1

        # --- Pleo's outcomes, crashes, time -----------------------------------------------------

        @rule(
            outcome=st.sampled_from(OUTCOMES),
            call=st.sampled_from(sorted(TARGETS)),
            apply_late=st.booleans(),
        )
        def pleo_outcome(self, outcome, call, apply_late):
            _arm(state, outcome, call, apply_late)
            stats["pleo_outcomes_armed"] += outcome != "2xx"

        @rule(index=st.integers(0, 1), point=st.sampled_from(POINTS))
        def worker_crash(self, index, point):
            with crash_at(point):
                try:
                    company_check_run(company=world.company(index), trigger=Trigger.RECOVERY)
                except SimulatedCrash:
                    stats["crashes"] += 1

        @rule(seconds=st.sampled_from([5, LEASE_SECONDS + 1, 301, 1801, 3601]))
        def clock_advances(self, seconds):
            clock.advance(seconds)
            state.advance_clock(seconds)

        # --- invariants -------------------------------------------------------------------------

        @invariant()
        def one_owner_started_on_pending_forward_only(self):
            stats["invariant_checks"] += 1
            log_202 = {
                (e["body"]["jobId"], e["requestId"])
                for e in state.requests("POST", EVENTS)
                if isinstance(e["body"], dict)
                and e["body"].get("event") == "started"
                and e["status"] == 202
            }
            for job_id in self.jobs:
                view = state.get_job(job_id)
                started = [e for e in view["events"] if e["event"] == "started" and e["accepted"]]
                assert len(started) <= 1, f"two owners of {job_id}: {started}"
                for event in started:
                    assert event["statusBefore"] == "pending", event
                for key in log_202:
                    if key[0] == job_id:
                        assert started and started[0]["requestId"] == key[1], (key, started)
                status = view["job"]["status"]
                assert RANK[status] >= self.rank.get(job_id, 0), (job_id, status)
                self.rank[job_id] = RANK[status]
                for item in view["items"]:
                    key = (job_id, item["accountingEntryId"])
                    if key in self.final_items:
                        assert item["status"] == self.final_items[key], (key, item["status"])
                    elif item["status"] in FINAL_ITEM:
                        self.final_items[key] = item["status"]
                local = ExportJob.objects.filter(pleo_job_id=job_id).first()
                if local is not None:
                    rank = RANK[local.status]
                    assert rank >= self.local_rank.get(job_id, 0), (job_id, local.status)
                    self.local_rank[job_id] = rank
                    if local.claim == ExportJob.Claim.OURS:
                        assert started and started[0]["identity"] in world.identities, (
                            f"{job_id} held as ours but started by {started}"
                        )

        # --- the end of an example ------------------------------------------------------------

        def teardown(self):
            state.clear_faults()
            for _ in range(6):
                clock.advance(LEASE_SECONDS * 2 + 1)
                state.advance_clock(LEASE_SECONDS * 2 + 1)
                leases_sweep_stale()
                from exports.tasks import poll_tick

                poll_tick()
                world.queue.drain()
            self.one_owner_started_on_pending_forward_only()
            views = {job_id: state.get_job(job_id)["job"] for job_id in self.jobs}
            now = clock.now()
            for job_id in self.pending_at_start:
                job = views[job_id]
                if job["status"] in ("completed", "completed_with_errors", "failed"):
                    stats["finished"] += 1
                    continue
                company = Company.objects.get(pk=world.companies[self.jobs[job_id]].pk)
                if company.lease_token and company.lease_expires_at > now:
                    stats["owned_by_live_lease"] += 1
                    continue
                blocked = any(
                    other["status"] == "in_progress"
                    and other["companyId"] == job["companyId"]
                    and any(
                        e["event"] == "started" and e["accepted"] and e["identity"] == OTHER
                        for e in state.get_job(other_id)["events"]
                    )
                    for other_id, other in views.items()
                )
                assert blocked, f"job {job_id} forgotten: {job}, company {company.__dict__}"
                stats["blocked_by_other_integration"] += 1

    return ExportMachine


def _run(pleo_sandbox, django_settings, examples: int, steps: int, name: str, monkeypatch):
    django_settings.PLEO_READ_TIMEOUT = 0.15
    django_settings.PLEO_CONNECT_TIMEOUT = 0.5
    django_settings.PLEO_MAX_ATTEMPTS = 2
    django_settings.PLEO_BACKOFF_BASE = 0
    django_settings.PLEO_BACKOFF_MAX = 0
    django_settings.PLEO_RETRY_AFTER_CAP = 1
    django_settings.COMPANY_LEASE_SECONDS = LEASE_SECONDS
    django_settings.COMPANY_LEASE_RENEW_SECONDS = 10
    django_settings.RECOVERY_RETRY_SECONDS = LEASE_SECONDS
    django_settings.PLEO_POLL_SLICES = 1
    django_settings.PLEO_RATE_LIMIT_PER_MINUTE = 0
    django_settings.PUBLIC_BASE_URL = "https://bridge.example"
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # a test database: no need to wait for the disk
            cursor.execute("SET synchronous_commit TO OFF")
    world = World(pleo_sandbox)
    monkeypatch.setattr("exports.services.dispatch.async_task", world.queue.async_task)
    stats = {
        "examples": 0,
        "invariant_checks": 0,
        "pleo_outcomes_armed": 0,
        "tasks": 0,
        "crashes": 0,
        "finished": 0,
        "owned_by_live_lease": 0,
        "blocked_by_other_integration": 0,
    }
    watch = Stopwatch()
    run_state_machine_as_test(
        _machine(world, stats),
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            derandomize=PROFILE == "ci",
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    record(name, max_examples=examples, steps_per_example=steps, seconds=watch.seconds(), **stats)


@pytest.mark.django_db(transaction=True)
def test_state_machine_smoke(pleo_sandbox, settings, monkeypatch):
    """A few examples on every run of the suite (bin/test); the full size is the slow test."""
    _run(pleo_sandbox, settings, 8, 12, "state_machine.smoke", monkeypatch)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.django_db(transaction=True)
def test_state_machine(pleo_sandbox, settings, monkeypatch):
    examples, steps = SIZES["sm_examples"], SIZES["sm_steps"]
    _run(pleo_sandbox, settings, examples, steps, "state_machine", monkeypatch)
