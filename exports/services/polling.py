"""Polling: the poll tick's round, spread over its interval in slices.

The poll tick (``exports.tasks.poll_tick``) calls :func:`poll_round_start`; the every-minute
maintenance task (``exports.tasks.maintenance``) calls :func:`poll_round_queue_due`.

django-q2 has no delayed enqueue, so the tick does not queue everything at once: it splits the
active companies into ``S`` slices by id (``pk % S``, ``S`` = ``PLEO_POLL_SLICES``, by default
one per minute of the interval) and queues slice 0 at once; the maintenance task queues slice
``k`` once ``k`` slices' worth of the interval have passed since the tick (catching up on any it
missed). A company is queued in a round only while it has not been checked since the round
began, is not running, not deferred and not queued already, so a company a webhook just checked
is not polled again in the same round. Slices go out ``PLEO_POLL_BATCH_SIZE`` companies per task.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Mod

from exports import clock
from exports.models import Company, Trigger, WorkerHeartbeat
from exports.services import heartbeat
from exports.services.dispatch import company_checks_enqueue, queued_marker_ttl

# The log keeps the name it had when this lived in the tasks module (log routing uses it).
logger = logging.getLogger("exports.tasks")


def poll_slices() -> int:
    """How many slices a round has: ``PLEO_POLL_SLICES``, or one per minute of the interval."""
    configured = int(settings.PLEO_POLL_SLICES or 0)
    return max(1, configured or int(settings.PLEO_POLL_INTERVAL_MINUTES))


def _slices_queue(*, round_start: datetime, upto: int, now: datetime) -> int:
    """Queue the companies of slices ``0..upto`` not checked since ``round_start``."""
    slices = poll_slices()
    stale = now - queued_marker_ttl()
    eligible = (
        Company.objects.filter(active=True, lease_token__isnull=True)
        .filter(Q(last_check_at__isnull=True) | Q(last_check_at__lt=round_start))
        .filter(Q(check_queued_at__isnull=True) | Q(check_queued_at__lt=stale))
        .filter(Q(next_run_not_before__isnull=True) | Q(next_run_not_before__lte=now))
    )
    if slices > 1:
        eligible = eligible.alias(slot=Mod("pk", slices)).filter(slot__lte=upto)
    ids = list(eligible.order_by("pk").values_list("pk", flat=True))
    if not ids:
        return 0
    return company_checks_enqueue(
        company_ids=ids, trigger=Trigger.SCHEDULE, batch_size=settings.PLEO_POLL_BATCH_SIZE
    )


def poll_round_start(*, now: datetime | None = None) -> int:
    """The polling schedule: start a round; its first slice is queued now, the rest later."""
    now = now or clock.now()
    queued = _slices_queue(round_start=now, upto=0, now=now)
    heartbeat.heartbeat_tick_completed()  # the round's start, read by poll_round_queue_due
    logger.info("Poll tick queued %d company check(s) (slice 1 of %d)", queued, poll_slices())
    return queued


def poll_round_queue_due(*, now: datetime | None = None) -> int:
    """Queue the slices of the current round whose time has come (called every minute)."""
    slices = poll_slices()
    if slices <= 1:
        return 0
    round_start = (
        WorkerHeartbeat.objects.filter(name=WorkerHeartbeat.TICK)
        .values_list("last_seen_at", flat=True)
        .first()
    )
    if round_start is None:
        return 0
    now = now or clock.now()
    interval = timedelta(minutes=settings.PLEO_POLL_INTERVAL_MINUTES)
    elapsed = now - round_start
    upto = slices - 1 if elapsed >= interval else int(elapsed / (interval / slices))
    if upto < 1:
        return 0
    queued = _slices_queue(round_start=round_start, upto=upto, now=now)
    if queued:
        logger.info("Poll round: queued %d company check(s) of slices up to %d", queued, upto + 1)
    return queued
