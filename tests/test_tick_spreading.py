"""The poll tick spread over its interval, companies batched per task, and the
``MAX_CONCURRENT_COMPANIES`` bound (deferred, never waited on) across real processes."""

from __future__ import annotations

import sys
from datetime import timedelta

import pytest

from exports import clock, tasks
from exports.models import Company, Trigger
from exports.services import leases
from exports.services.leases import CheckRecord, RunDeferred, lease_acquire, lease_release
from exports.services.start_flow import Outcome, company_check_run
from tests import processes
from tests.factories import make_company, make_credential

pytestmark = pytest.mark.django_db(transaction=True)


def queued_ids(sent) -> list[int]:
    return sorted(pk for call in sent for pk in call[1])


@pytest.fixture
def companies():
    credential = make_credential()
    return [make_company(name=f"C{i}", credential=credential) for i in range(20)]


def test_a_tick_spreads_its_companies_over_the_interval(sent, companies, settings):
    settings.PLEO_POLL_INTERVAL_MINUTES = 5  # five slices, one a minute
    settings.PLEO_POLL_BATCH_SIZE = 3
    slot = {c.pk: c.pk % 5 for c in companies}

    assert tasks.poll_tick() == 4
    assert queued_ids(sent) == sorted(pk for pk, s in slot.items() if s == 0)
    assert all(call[0] == "exports.tasks.run_company_checks" for call in sent)
    assert [len(call[1]) for call in sent] == [3, 1]  # batched

    assert tasks.poll_due_slices() == 0  # nothing more is due yet
    clock.advance(61)
    assert tasks.poll_due_slices() == 4
    assert queued_ids(sent) == sorted(pk for pk, s in slot.items() if s <= 1)

    # The maintenance task missed two minutes: it catches up on both slices at once.
    clock.advance(120)
    assert tasks.maintenance() == 0  # (the sweep's count)
    assert queued_ids(sent) == sorted(pk for pk, s in slot.items() if s <= 3)

    clock.advance(120)  # past the interval: the rest, before the next tick
    tasks.poll_due_slices()
    assert queued_ids(sent) == sorted(slot)
    assert len(queued_ids(sent)) == len(set(queued_ids(sent)))  # each company once


def test_a_round_skips_companies_already_checked_running_queued_or_deferred(
    sent, companies, settings
):
    settings.PLEO_POLL_SLICES = 1
    a, b, c, d, e = companies[:5]
    Company.objects.exclude(pk__in=[a.pk, b.pk, c.pk, d.pk, e.pk]).update(active=False)
    lease = lease_acquire(company_id=b.pk, trigger=Trigger.MANUAL)  # running
    Company.objects.filter(pk=c.pk).update(check_queued_at=clock.now())  # queued
    Company.objects.filter(pk=d.pk).update(
        work_pending=True, next_run_not_before=clock.now() + timedelta(minutes=1)
    )  # deferred: the sweep's
    assert tasks.poll_tick() == 2
    assert queued_ids(sent) == sorted([a.pk, e.pk])
    lease_release(lease=lease, check=CheckRecord("nothing_pending"))


def test_a_company_checked_since_the_round_began_is_not_polled_again(sent, companies, settings):
    settings.PLEO_POLL_INTERVAL_MINUTES = 2
    tasks.poll_tick()
    late = [c for c in companies if c.pk % 2 == 1]
    Company.objects.filter(pk=late[0].pk).update(last_check_at=clock.now() + timedelta(seconds=1))
    clock.advance(61)
    tasks.poll_due_slices()
    assert late[0].pk not in queued_ids(sent)
    assert set(c.pk for c in late[1:]) <= set(queued_ids(sent))


def test_a_batch_task_runs_each_company_and_clears_their_markers(companies, sent, monkeypatch):
    ran = []

    def fake_run(*, company, trigger, recover=False, run_id=None):
        ran.append(company.pk)
        return type("R", (), {"outcome": "nothing_pending"})()

    monkeypatch.setattr("exports.tasks.company_check_run", fake_run)
    ids = [c.pk for c in companies[:4]]
    Company.objects.filter(pk__in=ids).update(check_queued_at=clock.now())
    Company.objects.filter(pk=ids[1]).update(active=False)
    assert tasks.run_company_checks(ids, "schedule") == "nothing_pending: 3"
    assert ran == [ids[0], ids[2], ids[3]]
    assert not Company.objects.filter(pk__in=ids, check_queued_at__isnull=False).exists()


def test_a_batch_that_runs_long_hands_the_rest_back_to_the_queue(companies, sent, monkeypatch):
    monkeypatch.setattr(tasks, "BATCH_SECONDS", 0.0)
    monkeypatch.setattr(
        "exports.tasks.company_check_run",
        lambda **kw: type("R", (), {"outcome": "nothing_pending"})(),
    )
    ids = [c.pk for c in companies[:4]]
    result = tasks.run_company_checks(ids, "schedule")
    assert result == "handed back: 3, nothing_pending: 1"
    ((*handed_back, marker),) = sent
    assert handed_back == ["exports.tasks.run_company_checks", ids[1:], "schedule", False]
    assert Company.objects.filter(pk__in=ids[1:], check_queued_at=marker).count() == 3


# --- MAX_CONCURRENT_COMPANIES ---------------------------------------------------------------------


def test_over_the_bound_a_run_is_deferred_not_waited_on(companies, settings):
    settings.MAX_CONCURRENT_COMPANIES = 2
    a, b, c = companies[:3]
    first = lease_acquire(company_id=a.pk, trigger=Trigger.SCHEDULE)
    second = lease_acquire(company_id=b.pk, trigger=Trigger.SCHEDULE)
    with pytest.raises(RunDeferred):
        lease_acquire(company_id=c.pk, trigger=Trigger.SCHEDULE)
    # A company already running is "busy" (its holder rechecks), not deferred.
    assert lease_acquire(company_id=a.pk, trigger=Trigger.WEBHOOK) is None
    assert Company.objects.get(pk=a.pk).recheck_requested

    result = company_check_run(company=c, trigger=Trigger.SCHEDULE)
    assert result.outcome == Outcome.DEFERRED
    c.refresh_from_db()
    assert (c.lease_token, c.work_pending, c.last_check_outcome) == (None, True, "deferred")
    assert c.next_run_not_before == result.not_before > clock.now()

    lease_release(lease=second, check=CheckRecord("nothing_pending"))
    third = lease_acquire(company_id=c.pk, trigger=Trigger.RECOVERY)
    assert third is not None
    lease_release(lease=first, check=CheckRecord("nothing_pending"))
    lease_release(lease=third, check=CheckRecord("nothing_pending"))


def test_an_expired_lease_does_not_count_against_the_bound(companies, settings):
    settings.MAX_CONCURRENT_COMPANIES = 1
    settings.COMPANY_LEASE_SECONDS = 5
    a, b = companies[:2]
    assert lease_acquire(company_id=a.pk, trigger=Trigger.SCHEDULE)  # then the holder dies
    clock.advance(6)
    assert lease_acquire(company_id=b.pk, trigger=Trigger.SCHEDULE) is not None
    assert leases.lease_live_count() == 1


RACER = """
import sys, time
import django
django.setup()
from exports.services import leases
from exports.models import Company
ids, until = [int(x) for x in sys.argv[1].split(",")], float(sys.argv[2])
taken = deferred = 0
worst = 0
while time.time() < until:
    for company_id in ids:
        try:
            lease = leases.lease_acquire(company_id=company_id, trigger="schedule")
        except leases.RunDeferred:
            deferred += 1
            continue
        if lease is None:
            continue
        taken += 1
        worst = max(worst, leases.lease_live_count())
        time.sleep(0.02)
        leases.lease_release(lease=lease, check=leases.CheckRecord("nothing_pending"))
print("RESULT", taken, deferred, worst, flush=True)
"""


@pytest.mark.slow  # a multi-process proof (about 6 s): .ci/run runs it
@pytest.mark.subprocess
def test_the_bound_holds_across_processes(companies, product_env, tmp_path):
    """Four processes race for leases on twelve companies with a bound of 2: never more than two
    live leases, and both taking and deferring happen."""
    import time

    env = {**product_env, "MAX_CONCURRENT_COMPANIES": "2"}
    ids = [c.pk for c in companies[:12]]
    until = time.time() + 6.0
    racers = [
        [sys.executable, "-c", RACER, ",".join(map(str, ids[i::4])), repr(until)] for i in range(4)
    ]
    results = [
        [int(x) for x in words]
        for words in processes.run_together(racers, env, tmp_path, marker="RESULT")
    ]
    assert max(worst for _, _, worst in results) <= 2
    assert sum(taken for taken, _, _ in results) > 0
    assert sum(deferred for _, deferred, _ in results) > 0
    assert not Company.objects.filter(lease_token__isnull=False).exists()
