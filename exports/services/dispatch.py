"""Enqueueing company checks: one coalesced task per company, whatever triggered it.

Triggers (webhook, tick, admin, sweep) only call :func:`enqueue_company_check`. A company with a
check already queued is not queued again: the queued task lists the company's jobs when it runs,
so it sees whatever the new trigger announced. If a run is going when the task arrives, the flow
sets "recheck requested" and the holder lists again before it releases: nothing is lost.

The queued marker is a timestamp, not a flag: a marker older than the broker's re-delivery window
(the task was lost) no longer blocks a new enqueue.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django_q.tasks import async_task

from exports import clock
from exports.models import Company

logger = logging.getLogger(__name__)

TASK = "exports.tasks.run_company_check"


def queued_marker_ttl() -> timedelta:
    return timedelta(seconds=settings.Q_CLUSTER["retry"] + 60)


class EnqueueFailed(Exception):
    """The broker refused the task (unreachable, misconfigured)."""


def enqueue_company_check(*, company_id: int, trigger: str, recover: bool = False) -> bool:
    """Queue one check of the company unless one is already queued. True when queued now.

    Inside a transaction the task is sent on commit (the trigger's own row must be visible to
    the worker first); a broker failure then surfaces as :class:`EnqueueFailed` at commit.
    """
    now = clock.now()
    stale = now - queued_marker_ttl()
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
