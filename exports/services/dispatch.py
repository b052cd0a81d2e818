"""Enqueueing company checks: one coalesced task per company, whatever triggered it.

Triggers (webhook, tick, admin, sweep) only call :func:`company_check_enqueue`. A company with a
check already queued is not queued again: the queued task lists the company's jobs when it runs,
so it sees whatever the new trigger announced. If a run is going when the task arrives, the flow
sets "recheck requested" and the holder lists again before it releases: nothing is lost.

The queued marker is a timestamp, not a flag, and the task carries it. A worker that picks the
task up clears the marker and records the task's queued time on the company
(``check_picked_queued_at``); the largest of those is how far the queue has got (its progress).
A marker no longer blocks a new enqueue when its task was lost, which shows in one of two ways:

* the queue has moved past it: a check queued more than :data:`LOST_AFTER_LATER_PICKUP` after it
  was picked up, and this one was not (the brokers hand tasks out oldest first; a worker killed
  with prefetched tasks takes them along: with Redis for ever, with the ORM broker until
  ``Q_CLUSTER["retry"]``). On a live service the poll tick queues checks every few minutes, so a
  lost check is replaced within about one poll interval;
* or it is older than the broker's re-delivery window (:func:`queued_marker_ttl`), for a queue
  that moved not at all. A long backlog alone never makes a marker stale: nothing queued after
  it has been picked up yet.

A marker taken for lost while its task was only slow costs one duplicate check: the lease lets
one run at a time, and the second finds nothing new.

Many companies at once (the poll tick's slices): :func:`company_checks_enqueue` marks them with
one UPDATE per chunk and queues them ``batch_size`` per task (``exports.tasks.run_company_checks``),
so the queue's own enqueue, claim and acknowledgement are paid once per batch, not per company.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.db.models import Max, Q
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


# How much later a picked-up check must have been queued for an earlier marker to count as lost
# (room for workers that prefetch a few tasks, and for clocks of several machines).
LOST_AFTER_LATER_PICKUP = timedelta(seconds=60)


# ``company_check_enqueue(progress=...)`` not given: read it.
NOT_READ = object()


def queued_marker_ttl() -> timedelta:
    return timedelta(seconds=settings.Q_CLUSTER["retry"] + 60)


def queue_progress() -> datetime | None:
    """When the most recently queued check that a worker has picked up was queued (or None)."""
    return Company.objects.aggregate(progress=Max("check_picked_queued_at"))["progress"]


def queued_marker_stale_before(*, now: datetime, progress: datetime | None) -> datetime:
    """A queued marker set before this no longer blocks a new check: its task was lost."""
    expired = now - queued_marker_ttl()
    if progress is None:
        return expired
    return max(expired, progress - LOST_AFTER_LATER_PICKUP)


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


def task_commits_with_transaction() -> bool:
    """The broker keeps its tasks in our own database (django-q2's ORM broker on ``default``):
    a task queued inside a transaction is committed, or rolled back, with it."""
    return Conf.ORM == DEFAULT_DB_ALIAS and not Conf.BROKER_CLASS


def _send_with_the_transaction(send) -> None:
    """Queue the task so that the worker never sees it before the trigger's own rows.

    With the ORM broker, inside a transaction: the task row is written in it (an outbox: the
    trigger's rows and the task commit together or not at all, and one write transaction
    instead of two). With any other broker: when the transaction commits (a crash in between
    leaves a marker with no task, which :func:`queued_marker_stale_before` lets go of). Outside a
    transaction: at once. A broker failure raises :class:`EnqueueFailed` in the transaction
    (which then rolls back) or at commit.
    """
    if task_commits_with_transaction() and transaction.get_connection().in_atomic_block:
        send()
    else:
        transaction.on_commit(send, robust=False)


@functools.cache
def _mark_sql() -> str:
    """The marker's compare-and-set: set it unless a check is queued (a marker newer than
    ``stale``). One prepared UPDATE: it runs inside the webhook's write transaction, where the
    ORM's query building held SQLite's writer lock longer than the statement (benchmark 2)."""
    meta = Company._meta
    table = connection.ops.quote_name(meta.db_table)
    queued, pk, active = (
        connection.ops.quote_name(meta.get_field(name).column)
        for name in ("check_queued_at", "id", "active")
    )
    return (
        f"UPDATE {table} SET {queued} = %s WHERE {pk} = %s AND {active} "  # noqa: S608 (names only)
        f"AND ({queued} IS NULL OR {queued} < %s)"
    )


class EnqueueFailed(Exception):
    """The broker refused the task (unreachable, misconfigured)."""


def company_check_enqueue(
    *,
    company_id: int,
    trigger: str,
    recover: bool = False,
    marker_stale_after: timedelta | None = None,
    progress: datetime | None | object = NOT_READ,
) -> bool:
    """Queue one check of the company unless one is already queued. True when queued now.

    The task goes with the caller's transaction (:func:`_send_with_the_transaction`); a broker
    failure surfaces as :class:`EnqueueFailed` there or at commit.
    ``marker_stale_after`` (the recovery sweep, for a crashed run's company) overrides how old a
    queued marker must be before it no longer blocks. ``progress``: the queue's progress as the
    caller read it (the webhook's one read); otherwise it is read here.
    """
    now = clock.now()
    if marker_stale_after is not None:
        stale = now - marker_stale_after
    else:
        stale = queued_marker_stale_before(
            now=now, progress=queue_progress() if progress is NOT_READ else progress
        )
    with connection.cursor() as cursor:
        cursor.execute(
            _mark_sql(),
            [
                connection.ops.adapt_datetimefield_value(now),
                company_id,
                connection.ops.adapt_datetimefield_value(stale),
            ],
        )
        marked = cursor.rowcount
    if not marked:
        return False

    _queue(TASK, company_id, trigger, recover, now, f"check company {company_id} ({trigger})")
    return True


def _picked_up(queued_at: datetime | None) -> dict:
    # Tasks queued before their queued time was passed along record no progress.
    return {"check_picked_queued_at": queued_at} if queued_at is not None else {}


def queued_marker_clear(*, company_id: int, queued_at: datetime | None = None) -> None:
    """The worker picked the task (queued at ``queued_at``) up: a new trigger may queue another
    check from now on, and the queue's progress is recorded (one UPDATE)."""
    Company.objects.filter(pk=company_id).update(check_queued_at=None, **_picked_up(queued_at))


def _chunks(items: Sequence[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def company_checks_enqueue(
    *, company_ids: Sequence[int], trigger: str, batch_size: int, recover: bool = False
) -> int:
    """Queue checks of many companies, ``batch_size`` per task; returns how many were queued.

    Companies with a check already queued (or inactive ones) are left out, as with
    :func:`company_check_enqueue`. Inside a transaction the tasks are sent on commit.
    """
    batch_size = max(1, int(batch_size))
    now = clock.now()
    stale = queued_marker_stale_before(now=now, progress=queue_progress())
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
            task_name = f"check {len(batch)} companies ({trigger})"
            _queue(BATCH_TASK, batch, trigger, recover, now, task_name)
        queued += len(chunk)
    return queued


def _queue(func: str, target, trigger: str, recover: bool, marked_at, task_name: str) -> None:
    """Send one task (``target``: a company id, or a batch of them) with the transaction
    (:func:`_send_with_the_transaction`). A broker failure takes back the markers this call set
    (the target's companies still marked ``marked_at``) and raises :class:`EnqueueFailed`."""
    pks = target if isinstance(target, list) else [target]
    unmark = Company.objects.filter(pk__in=pks, check_queued_at=marked_at)

    def send():
        try:
            async_task(
                func,
                target,
                trigger,
                recover,
                marked_at,  # the marker: the worker records it as the queue's progress
                task_name=task_name,
                group="company-checks",
                # Successes are not kept: the companies' last check and the audit table show
                # every outcome, and django-q2 prunes its success table (up to save_limit rows,
                # under a write lock) after each saved task. Failures are still saved.
                save=False,
                broker=_broker(),
            )
        except Exception as exc:  # the broker's own errors are not a typed family
            unmark.update(check_queued_at=None)
            logger.error("Could not enqueue the task '%s': %s", task_name, exc)
            raise EnqueueFailed(str(exc)) from exc

    _send_with_the_transaction(send)


def queued_markers_clear(*, company_ids: Sequence[int], queued_at: datetime | None = None) -> None:
    """A batch task (queued at ``queued_at``) was picked up: its companies may be queued again
    from now on, and the queue's progress is recorded."""
    Company.objects.filter(pk__in=list(company_ids)).update(
        check_queued_at=None, **_picked_up(queued_at)
    )
