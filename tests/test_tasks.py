"""Schedules, the tick's fan-out, coalescing, the sweep and the django-q2 safety checks."""

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from exports import checks, clock, tasks
from exports.models import Company, ExportJob, Trigger, WorkerHeartbeat
from exports.services import leases
from exports.services.dispatch import EnqueueFailed, company_check_enqueue
from exports.services.schedules import MAINTENANCE, POLL
from exports.services.sweep import leases_sweep_stale
from tests.factories import make_company, make_job

pytestmark = pytest.mark.django_db(transaction=True)


def test_ensure_schedules_is_idempotent_and_follows_the_interval(settings):
    settings.PLEO_POLL_INTERVAL_MINUTES = 5
    for _ in range(3):
        call_command("ensure_schedules", verbosity=0)
    assert Schedule.objects.filter(name=POLL).count() == 1
    assert Schedule.objects.filter(name=MAINTENANCE).count() == 1
    assert Schedule.objects.get(name=POLL).minutes == 5
    settings.PLEO_POLL_INTERVAL_MINUTES = 2
    call_command("ensure_schedules", verbosity=0)
    assert Schedule.objects.get(name=POLL).minutes == 2
    # A duplicate made by hand is removed.
    Schedule.objects.create(
        name=POLL, func="exports.tasks.poll_tick", schedule_type=Schedule.MINUTES, minutes=2
    )
    call_command("ensure_schedules", verbosity=0)
    assert Schedule.objects.filter(name=POLL).count() == 1


def test_tick_enqueues_one_coalesced_check_per_active_company(sent, settings):
    settings.PLEO_POLL_SLICES = 1  # not spread (tests/test_tick_spreading.py covers slices)
    a, b = make_company(name="A"), make_company(name="B")
    make_company(name="Off", active=False)
    assert tasks.poll_tick() == 2
    assert sorted(pk for args in sent for pk in args[1]) == sorted([a.pk, b.pk])
    assert all(
        args[0] == "exports.tasks.run_company_checks" and args[2] == "schedule" for args in sent
    )
    # Still queued: a second tick (or a webhook) adds nothing.
    assert tasks.poll_tick() == 0
    assert company_check_enqueue(company_id=a.pk, trigger=Trigger.WEBHOOK) is False
    assert len(sent) == 1  # one task carries both (PLEO_POLL_BATCH_SIZE)
    assert WorkerHeartbeat.objects.filter(name=WorkerHeartbeat.TICK).exists()


def test_queued_marker_is_cleared_when_the_worker_picks_the_task_up(sent, monkeypatch):
    company = make_company()
    assert company_check_enqueue(company_id=company.pk, trigger=Trigger.SCHEDULE)
    monkeypatch.setattr(
        "exports.tasks.company_check_run",
        lambda **kw: type("R", (), {"outcome": "nothing_pending"})(),
    )
    assert tasks.run_company_check(company.pk, "schedule") == "nothing_pending"
    assert company_check_enqueue(company_id=company.pk, trigger=Trigger.WEBHOOK)


def test_a_lost_task_does_not_block_the_company_forever(sent, settings):
    company = make_company()
    assert company_check_enqueue(company_id=company.pk, trigger=Trigger.SCHEDULE)
    clock.advance(settings.Q_CLUSTER["retry"] + 120)
    assert company_check_enqueue(company_id=company.pk, trigger=Trigger.SCHEDULE)


def test_enqueue_failure_clears_the_marker_and_raises(monkeypatch):
    company = make_company()

    def broken(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr("exports.services.dispatch.async_task", broken)
    with pytest.raises(EnqueueFailed):
        company_check_enqueue(company_id=company.pk, trigger=Trigger.SCHEDULE)
    assert Company.objects.get(pk=company.pk).check_queued_at is None


def test_sweep_requeues_crashed_and_unfinished_companies(sent, settings):
    settings.COMPANY_LEASE_SECONDS = 5
    crashed = make_company(name="Crashed")
    idle = make_company(name="Idle")
    unfinished = make_company(name="Unfinished")
    leases.lease_acquire(company_id=crashed.pk, trigger=Trigger.SCHEDULE)
    make_job(
        unfinished,
        pleo_job_id="00000000-0000-0000-0000-000000000001",
        status="in_progress",
        claim=ExportJob.Claim.OURS,
    )
    assert leases_sweep_stale() == 1  # the crashed lease has not expired yet
    clock.advance(6)
    assert leases_sweep_stale() == 1
    queued = {args[1]: args[2:4] for args in sent}  # (the last argument: the marker)
    assert queued == {unfinished.pk: ("recovery", True), crashed.pk: ("recovery", True)}
    assert idle.pk not in queued


def test_system_check_warns_on_dangerous_queue_settings(settings):
    assert checks.q_cluster_settings(None) == []
    settings.Q_CLUSTER = {
        **settings.Q_CLUSTER,
        "retry": 60,
        "timeout": 900,
        "catch_up": True,
        "max_attempts": 0,
    }
    ids = {w.id for w in checks.q_cluster_settings(None)}
    assert ids == {"exports.W002", "exports.W003", "exports.W004"}
    settings.Q_CLUSTER = {k: v for k, v in settings.Q_CLUSTER.items() if k != "timeout"}
    assert "exports.W001" in {w.id for w in checks.q_cluster_settings(None)}
