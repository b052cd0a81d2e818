"""Recovery without a human: re-enqueue companies whose lease lapsed with work unfinished."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import BooleanField, ExpressionWrapper, Q

from exports import clock
from exports.models import Company, ExportJob, Trigger
from exports.services.dispatch import company_check_enqueue
from exports.services.leases import lease_duration

logger = logging.getLogger(__name__)


def leases_sweep_stale() -> int:
    """Enqueue a recovery check for every active company that a crashed run left behind.

    A company qualifies when its lease deadline has passed (the holder died or stalled), when a
    finished run said work is pending and its not-before time has come, or when a job of ours is
    still unfinished in our mirror with no lease held (and no not-before time in the future: a
    deferred run waits for it). Returns how many checks were queued.
    """
    now = clock.now()
    ours_unfinished = ExportJob.objects.filter(
        claim__in=[ExportJob.Claim.OURS, ExportJob.Claim.STARTING, ExportJob.Claim.ADOPTED],
        status__in=[ExportJob.Status.PENDING, ExportJob.Status.IN_PROGRESS],
    ).values("company_id")
    # A run that ended (paused, failed) less than RECOVERY_RETRY_SECONDS ago is not retried yet:
    # the sweep runs every few seconds in every worker, and a job that fails alike each time must
    # not be retried at that pace. A crashed run (lease lapsed) is taken over at once.
    retry_after = timedelta(seconds=settings.RECOVERY_RETRY_SECONDS)
    # A deferred run (request budget spent, concurrency bound) said when it may run again: both
    # "work pending" and "a job of ours unfinished" wait for exactly that, not the retry gap.
    due = Q(next_run_not_before__lte=now) | Q(next_run_not_before__isnull=True) & (
        Q(last_check_at__isnull=True) | Q(last_check_at__lte=now - retry_after)
    )
    lapsed = Q(lease_token__isnull=False, lease_expires_at__lt=now)
    candidates = (
        Company.objects.filter(active=True)
        .filter(
            lapsed
            | Q(lease_token__isnull=True, work_pending=True) & due
            | Q(lease_token__isnull=True, pk__in=ours_unfinished) & due
        )
        .annotate(lapsed=ExpressionWrapper(lapsed, output_field=BooleanField()))
        .values_list("pk", "lapsed")
    )
    queued = 0
    for company_id, lease_lapsed in candidates:
        # A crash may have taken the company's queued check down with it (tasks a killed worker
        # had prefetched, or that a Redis broker handed out, are not re-delivered for
        # Q_CLUSTER["retry"] seconds, or ever): for a lapsed lease, a queued marker older than
        # one lease does not stop a new check (a duplicate is harmless; the lease decides).
        stale_after = lease_duration() if lease_lapsed else None
        if company_check_enqueue(
            company_id=company_id,
            trigger=Trigger.RECOVERY,
            recover=True,
            marker_stale_after=stale_after,
        ):
            queued += 1
    if queued:
        logger.info("Sweep queued %d recovery check(s)", queued)
    return queued
