"""Regression tests for two fixes found by the crash and bad-input scenarios (fast, in-process).

1. Recovery depended on the scheduler: a restarted worker swept once at spawn, usually before
   the dead run's lease had lapsed, and then only the maintenance schedule (30-second scheduler
   cycle, one-minute interval) swept again. Every worker process now also sweeps every
   ``RECOVERY_SWEEP_SECONDS`` (``exports.signals.start_periodic_sweep``).
2. With the sweep that frequent, a company whose run paused on the same problem each time would
   be retried every few seconds: the sweep now waits ``RECOVERY_RETRY_SECONDS`` after such a run
   (a lapsed lease is still taken over at once).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from exports import clock, signals
from exports.models import Company
from exports.services.sweep import leases_sweep_stale
from tests.factories import make_company
from tests.processes import wait_until


@pytest.fixture
def swept(monkeypatch):
    calls = []
    monkeypatch.setattr(
        "exports.services.sweep.company_check_enqueue",
        lambda **kw: calls.append(kw["company_id"]) or True,
    )
    return calls


@pytest.mark.django_db(transaction=True)
def test_every_worker_sweeps_periodically_not_only_at_spawn(swept, settings, monkeypatch):
    settings.RECOVERY_SWEEP_SECONDS = 0.05
    monkeypatch.setattr(signals, "_sweeper_pid", None)
    company = make_company(name="Crashed")
    stop = threading.Event()
    thread = signals.start_periodic_sweep(stop)
    try:
        assert thread is not None and thread.is_alive()
        assert signals.start_periodic_sweep(stop) is None  # one sweeping thread per process
        # A run dies holding the lease; the lease lapses later: the thread notices by itself.
        Company.objects.filter(pk=company.pk).update(
            lease_token="00000000-0000-0000-0000-000000000001",
            lease_expires_at=clock.now() + timedelta(seconds=0.3),
        )
        wait_until(lambda: company.pk in swept, timeout=5, message="periodic sweep")
    finally:
        stop.set()
        thread.join(timeout=5)


def test_periodic_sweep_can_be_switched_off(settings, monkeypatch):
    settings.RECOVERY_SWEEP_SECONDS = 0
    monkeypatch.setattr(signals, "_sweeper_pid", None)
    assert signals.start_periodic_sweep(threading.Event()) is None


@pytest.mark.django_db
def test_sweep_retries_unfinished_work_only_after_the_retry_delay(swept, settings):
    settings.RECOVERY_RETRY_SECONDS = 60
    paused = make_company(name="Paused")
    crashed = make_company(name="Crashed")
    now = clock.now()
    Company.objects.filter(pk=paused.pk).update(work_pending=True, last_check_at=now)
    Company.objects.filter(pk=crashed.pk).update(
        lease_token="00000000-0000-0000-0000-000000000002",
        lease_expires_at=now - timedelta(seconds=1),
        last_check_at=now,
    )
    leases_sweep_stale()
    assert swept == [crashed.pk]  # a lapsed lease: at once
    swept.clear()
    clock.advance(61)
    leases_sweep_stale()
    assert sorted(swept) == sorted([paused.pk, crashed.pk])


@pytest.mark.django_db
def test_a_crashed_runs_company_is_queued_again_even_if_its_queued_check_was_lost(
    settings, django_capture_on_commit_callbacks
):
    """Regression (crash recovery, full profile): the killed worker had taken the company's
    queued check with it; its queued marker blocked every new check for Q_CLUSTER["retry"] + 60
    seconds (21 minutes by default). For a lapsed lease, a marker older than one lease no longer
    blocks the sweep; other triggers and other companies keep the long marker."""
    from exports.services import sweep

    settings.COMPANY_LEASE_SECONDS = 3
    queued = []
    crashed = make_company(name="Crashed, check lost")
    waiting = make_company(name="Check queued, no crash")
    now = clock.now()
    Company.objects.filter(pk=crashed.pk).update(
        lease_token="00000000-0000-0000-0000-000000000003",
        lease_expires_at=now - timedelta(seconds=1),
        check_queued_at=now - timedelta(seconds=2),
    )
    Company.objects.filter(pk=waiting.pk).update(
        work_pending=True, check_queued_at=now - timedelta(seconds=600)
    )

    def send(*args, **kwargs):
        queued.append(args[1])

    with (
        pytest.MonkeyPatch.context() as patch,
        django_capture_on_commit_callbacks(execute=True),
    ):
        patch.setattr("exports.services.dispatch.async_task", send)
        assert sweep.leases_sweep_stale() == 0  # the marker is younger than a lease: wait
        clock.advance(2)
        assert sweep.leases_sweep_stale() == 1
    assert queued == [crashed.pk]
    assert Company.objects.get(pk=waiting.pk).check_queued_at < now  # still its old marker
