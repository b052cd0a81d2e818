"""The queued marker (one queued check per company) and a check lost with a killed worker.

A worker that dies with tasks it had prefetched takes them along (with Redis for ever, with the
ORM broker until ``Q_CLUSTER["retry"]``). The marker of such a task must not block the company's
triggers for the whole re-delivery window: once a check queued later has been picked up, the
queue has moved past it, and a new trigger queues the company again.
"""

from datetime import timedelta

import pytest

from exports import clock, tasks
from exports.models import Company, Trigger
from exports.services import dispatch
from exports.services.dispatch import (
    LOST_AFTER_LATER_PICKUP,
    company_check_enqueue,
    company_checks_enqueue,
    queued_marker_ttl,
)
from tests.factories import make_company

# transaction=True: the checks are sent when their transaction commits.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def lost():
    """A company whose check was queued five minutes ago and never picked up."""
    company = make_company(name="Lost")
    queued_at = clock.now() - timedelta(minutes=5)
    Company.objects.filter(pk=company.pk).update(check_queued_at=queued_at)
    return company, queued_at


def picked_up(queued_at):
    """Another company's check, queued at ``queued_at``, was picked up by a worker."""
    other = make_company(name=f"Other {queued_at:%H%M%S%f}")
    Company.objects.filter(pk=other.pk).update(check_picked_queued_at=queued_at)


def test_a_marker_the_queue_has_moved_past_no_longer_blocks(lost, sent):
    company, queued_at = lost
    picked_up(queued_at + LOST_AFTER_LATER_PICKUP + timedelta(seconds=1))
    assert company_check_enqueue(company_id=company.pk, trigger=Trigger.WEBHOOK)
    assert len(sent) == 1
    assert Company.objects.get(pk=company.pk).check_queued_at > queued_at


def test_a_marker_just_behind_the_queue_still_coalesces(lost, sent):
    """Prefetching workers and several clocks: a check picked up a little out of order."""
    company, queued_at = lost
    picked_up(queued_at + LOST_AFTER_LATER_PICKUP - timedelta(seconds=1))
    assert not company_check_enqueue(company_id=company.pk, trigger=Trigger.WEBHOOK)
    assert sent == []


def test_a_slow_queue_keeps_coalescing_until_the_redelivery_window(lost, sent):
    """Nothing queued later was picked up yet (a backlog): no duplicate checks pile up."""
    company, queued_at = lost
    picked_up(queued_at - timedelta(minutes=1))
    assert not company_check_enqueue(company_id=company.pk, trigger=Trigger.WEBHOOK)
    Company.objects.filter(pk=company.pk).update(
        check_queued_at=clock.now() - queued_marker_ttl() - timedelta(seconds=1)
    )
    assert company_check_enqueue(company_id=company.pk, trigger=Trigger.WEBHOOK)
    assert len(sent) == 1


def test_the_tick_queues_a_lost_company_again_and_leaves_the_queued_one(lost, sent):
    company, queued_at = lost
    waiting = make_company(name="Waiting")
    Company.objects.filter(pk=waiting.pk).update(check_queued_at=clock.now())
    picked_up(queued_at + timedelta(minutes=2))
    queued = company_checks_enqueue(
        company_ids=[company.pk, waiting.pk], trigger=Trigger.SCHEDULE, batch_size=25
    )
    assert queued == 1
    ((_task, batch, *_rest),) = sent
    assert batch == [company.pk]


def test_a_worker_records_the_queue_progress_when_it_picks_a_check_up(monkeypatch, sent):
    monkeypatch.setattr(
        "exports.tasks.company_check_run", lambda **kw: type("R", (), {"outcome": "ok"})()
    )
    one, two, three = (make_company(name=n) for n in ("One", "Two", "Three"))
    assert company_check_enqueue(company_id=one.pk, trigger=Trigger.WEBHOOK)
    ((_task, company_id, trigger, recover, marker),) = sent
    tasks.run_company_check(company_id, trigger, recover, marker)
    one.refresh_from_db()
    assert (one.check_queued_at, one.check_picked_queued_at) == (None, marker)
    assert dispatch.queue_progress() == marker

    assert company_checks_enqueue(
        company_ids=[two.pk, three.pk], trigger=Trigger.SCHEDULE, batch_size=25
    )
    _task, batch, trigger, recover, batch_marker = sent[1]
    tasks.run_company_checks(batch, trigger, recover, batch_marker)
    assert set(
        Company.objects.filter(pk__in=[two.pk, three.pk]).values_list(
            "check_queued_at", "check_picked_queued_at"
        )
    ) == {(None, batch_marker)}


def test_a_task_queued_before_the_upgrade_still_runs(monkeypatch):
    """Tasks already in the queue carry no marker: they run, and record no progress."""
    monkeypatch.setattr(
        "exports.tasks.company_check_run", lambda **kw: type("R", (), {"outcome": "ok"})()
    )
    company = make_company(name="Old task")
    Company.objects.filter(pk=company.pk).update(check_queued_at=clock.now())
    assert tasks.run_company_check(company.pk, Trigger.SCHEDULE, False) == "ok"
    company.refresh_from_db()
    assert (company.check_queued_at, company.check_picked_queued_at) == (None, None)


def test_lost_check_then_a_webhook_end_to_end(sent, monkeypatch):
    """A worker killed with A's check prefetched; B's later check runs; A's next webhook-like
    trigger queues A again instead of waiting for the re-delivery window (about 21 minutes)."""
    monkeypatch.setattr(
        "exports.tasks.company_check_run", lambda **kw: type("R", (), {"outcome": "ok"})()
    )
    a, b = make_company(name="A"), make_company(name="B")
    assert company_check_enqueue(company_id=a.pk, trigger=Trigger.WEBHOOK)
    lost_task = sent.pop()  # prefetched by the killed worker: never runs
    Company.objects.filter(pk=a.pk).update(check_queued_at=lost_task[4] - timedelta(minutes=2))
    assert company_check_enqueue(company_id=b.pk, trigger=Trigger.WEBHOOK)
    tasks.run_company_check(*sent.pop()[1:])
    assert company_check_enqueue(company_id=a.pk, trigger=Trigger.WEBHOOK)
    assert sent[0][1] == a.pk
