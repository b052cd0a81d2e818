"""Scenario 5 (second half): a scheduler outage of an hour produces one run, not a burst.

The outage is simulated by moving every schedule's ``next_run`` an hour back, then running
django-q2's own scheduler (``django_q.scheduler.scheduler``, what the cluster's sentinel calls
every 30 s) cycle after cycle until nothing is due. With the product's ``catch_up: False`` each
schedule fires once and jumps to its next future run. The same outage with ``catch_up`` forced on
shows the burst it prevents (one run per missed interval, one per scheduler cycle).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.scheduler import scheduler

from exports.services.schedules import MAINTENANCE, POLL, schedules_ensure
from tests.reliability.profile import record

# The scheduler closes old connections: a transactional test lets it.
pytestmark = pytest.mark.django_db(transaction=True)


class _Broker:
    """Records what the scheduler enqueues (no real queue needed)."""

    list_key = "outage-test"

    def __init__(self) -> None:
        self.tasks: list[str] = []

    def enqueue(self, pack) -> str:
        self.tasks.append(pack)
        return str(len(self.tasks))


def _outage_then_cycles(max_cycles: int = 100) -> tuple[dict[str, int], int]:
    """Every schedule an hour overdue; scheduler cycles until none is due. Returns the tasks
    created per schedule and the cycles it took."""
    schedules_ensure()
    Schedule.objects.update(next_run=timezone.now() - timedelta(hours=1))
    created = {name: 0 for name in (POLL, MAINTENANCE)}
    cycles = 0
    for cycles in range(1, max_cycles + 1):  # noqa: B007
        broker = _Broker()
        before = dict(Schedule.objects.values_list("name", "task"))
        scheduler(broker=broker)
        after = dict(Schedule.objects.values_list("name", "task"))
        for name in created:
            created[name] += before.get(name) != after.get(name)
        if not Schedule.objects.filter(next_run__lt=timezone.now()).exists():
            break
    return created, cycles


def test_an_hour_long_scheduler_outage_produces_one_run_per_schedule():
    assert Conf.CATCH_UP is False  # settings.Q_CLUSTER["catch_up"]
    created, cycles = _outage_then_cycles()
    next_runs = list(Schedule.objects.values_list("next_run", flat=True))
    record("scheduler_outage.catch_up_false", outage_minutes=60, tasks=created, cycles=cycles)
    assert created == {POLL: 1, MAINTENANCE: 1}
    assert cycles == 1
    assert all(run > timezone.now() for run in next_runs)


def test_the_same_outage_with_catch_up_would_be_a_burst(monkeypatch):
    monkeypatch.setattr(Conf, "CATCH_UP", True)
    created, cycles = _outage_then_cycles()
    record("scheduler_outage.catch_up_true_counterfactual", outage_minutes=60, tasks=created)
    assert created[MAINTENANCE] >= 60  # one per missed minute, one per 30-second cycle
    assert created[POLL] >= 12
