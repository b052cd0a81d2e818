"""Enqueueing company checks: one coalesced task per company, whatever triggered it.

Triggers (webhook, tick, admin, sweep) only call :func:`enqueue_company_check`. A company with a
check already queued is not queued again: the queued task lists the company's jobs when it runs,
so it sees whatever the new trigger announced. If a run is going when the task arrives, the flow
sets "recheck requested" and the holder lists again before it releases: nothing is lost.

The queued marker is a timestamp, not a flag: a marker older than the broker's re-delivery window
(the task was lost) no longer blocks a new enqueue.

Many companies at once (the poll tick's slices): :func:`enqueue_company_checks` marks them with
one UPDATE per chunk and queues them ``batch_size`` per task (``exports.tasks.run_company_checks``),
so the queue's own enqueue, claim and acknowledgement are paid once per batch, not per company.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django_q.brokers import Broker, get_broker
from django_q.conf import Conf
from django_q.tasks import async_task

from exports import clock
from exports.models import Company

logger = logging.getLogger(__name__)

TASK = "exports.tasks.run_company_check"
BATCH_TASK = "exports.tasks.run_company_checks"
# Companies marked per UPDATE (well under every backend's limit of bound parameters).
_MARK_CHUNK = 500


def queued_marker_ttl() -> timedelta:
    return timedelta(seconds=settings.Q_CLUSTER["retry"] + 60)


_brokers: dict[tuple, Broker] = {}


def _broker() -> Broker:
    """This process's broker client, made once per process (and broker settings).

    ``async_task`` without ``broker=`` makes a new one per call; with Redis that is a new
    connection (and a package-metadata lookup) per task: most of a webhook's answer time.
    """
    key = (os.getpid(), Conf.CLUSTER_NAME, Conf.ORM, str(Conf.REDIS), Conf.BROKER_CLASS)
    broker = _brokers.get(key)
    if broker is None:
        _brokers.clear()  # another process's (after a fork) or other settings': not ours
        broker = _brokers[key] = get_broker()
    return broker


class EnqueueFailed(Exception):
    """The broker refused the task (unreachable, misconfigured)."""


def enqueue_company_check(
    *,
    company_id: int,
    trigger: str,
    recover: bool = False,
    marker_stale_after: timedelta | None = None,
) -> bool:
    """Queue one check of the company unless one is already queued. True when queued now.

    Inside a transaction the task is sent on commit (the trigger's own row must be visible to
    the worker first); a broker failure then surfaces as :class:`EnqueueFailed` at commit.
    ``marker_stale_after`` (the recovery sweep, for a crashed run's company) overrides how old a
    queued marker must be before it no longer blocks.
    """
    now = clock.now()
    stale = now - (marker_stale_after or queued_marker_ttl())
    marked = (
        Company.objects.filter(pk=company_id, active=True)
        .filter(Q(check_queued_at__isnull=True) | Q(check_queued_at__lt=stale))
        .update(check_queued_at=now)
    )
    if not marked:
        return False

    def send():
        try:
            async_task(
                TASK,
                company_id,
                trigger,
                recover,
                task_name=f"check company {company_id} ({trigger})",
                group="company-checks",
                broker=_broker(),
            )
        except Exception as exc:  # the broker's own errors are not a typed family
            Company.objects.filter(pk=company_id, check_queued_at=now).update(check_queued_at=None)
            logger.error("Could not enqueue a check of company %s: %s", company_id, exc)
            raise EnqueueFailed(str(exc)) from exc

    # Outside a transaction this runs at once; inside one, when it commits.
    transaction.on_commit(send, robust=False)
    return True


def clear_queued_marker(company_id: int) -> None:
    """The worker picked the task up: a new trigger may queue another check from now on."""
    Company.objects.filter(pk=company_id).update(check_queued_at=None)


def _chunks(items: Sequence[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def enqueue_company_checks(
    *, company_ids: Sequence[int], trigger: str, batch_size: int, recover: bool = False
) -> int:
    """Queue checks of many companies, ``batch_size`` per task; returns how many were queued.

    Companies with a check already queued (or inactive ones) are left out, as with
    :func:`enqueue_company_check`. Inside a transaction the tasks are sent on commit.
    """
    batch_size = max(1, int(batch_size))
    now = clock.now()
    stale = now - queued_marker_ttl()
    queued = 0
    for chunk in _chunks(list(company_ids), _MARK_CHUNK):
        marked = (
            Company.objects.filter(pk__in=chunk, active=True)
            .filter(Q(check_queued_at__isnull=True) | Q(check_queued_at__lt=stale))
            .update(check_queued_at=now)
        )
        if not marked:
            continue
        if marked < len(chunk):  # some were queued already: keep the ones this call marked
            ours = set(
                Company.objects.filter(pk__in=chunk, check_queued_at=now).values_list(
                    "pk", flat=True
                )
            )
            chunk = [pk for pk in chunk if pk in ours]
        for batch in _chunks(chunk, batch_size):
            transaction.on_commit(_sender(batch, trigger, recover, now), robust=False)
        queued += len(chunk)
    return queued


def _sender(batch: list[int], trigger: str, recover: bool, marked_at):
    def send():
        try:
            async_task(
                BATCH_TASK,
                batch,
                trigger,
                recover,
                task_name=f"check {len(batch)} companies ({trigger})",
                group="company-checks",
                save=False,  # successes are not kept (the companies' last check shows them)
                broker=_broker(),
            )
        except Exception as exc:  # the broker's own errors are not a typed family
            Company.objects.filter(pk__in=batch, check_queued_at=marked_at).update(
                check_queued_at=None
            )
            logger.error("Could not enqueue a check of %d companies: %s", len(batch), exc)
            raise EnqueueFailed(str(exc)) from exc

    return send


def clear_queued_markers(company_ids: Sequence[int]) -> None:
    """A batch task was picked up: its companies may be queued again from now on."""
    Company.objects.filter(pk__in=list(company_ids)).update(check_queued_at=None)
