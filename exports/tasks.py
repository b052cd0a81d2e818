"""django-q2 entry points: thin. Load by id, call a service.

The poll tick is spread over its interval (issue 11). django-q2 has no delayed enqueue, so the
tick does not queue everything at once: it splits the active companies into ``S`` slices by id
(``pk % S``, ``S`` = ``PLEO_POLL_SLICES``, by default one per minute of the interval) and queues
slice 0 at once; the every-minute maintenance task queues slice ``k`` once ``k`` slices' worth of
the interval have passed since the tick (catching up on any it missed). A company is queued in a
round only while it has not been checked since the round began, is not running, not deferred and
not queued already, so a company a webhook just checked is not polled again in the same round.
Slices go out ``PLEO_POLL_BATCH_SIZE`` companies per task.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Mod

from exports import clock
from exports.models import Company, Trigger, WorkerHeartbeat
from exports.notifications.service import notifications_maintenance
from exports.services import heartbeat
from exports.services.company_guard import company_check_guarded
from exports.services.delivery_states import webhook_deliveries_settle
from exports.services.dispatch import (
    clear_queued_marker,
    clear_queued_markers,
    enqueue_company_checks,
    queued_marker_ttl,
)
from exports.services.start_flow import run_export_check
from exports.services.sweep import sweep_stale_leases

logger = logging.getLogger(__name__)

# A batch task hands what is left of its batch back to the queue after this long, so one slow
# company (a big job to carry) does not hold the others past the task timeout.
BATCH_SECONDS = 120.0


def run_company_check(
    company_id: int, trigger: str, recover: bool = False, queued_at: datetime | None = None
) -> str:
    picked_up_at = clock.now()
    clear_queued_marker(company_id, queued_at)
    company = (
        Company.objects.select_related("credential").filter(pk=company_id, active=True).first()
    )
    if company is None:
        return "skipped: company inactive or gone"
    result = company_check_guarded(
        company=company, trigger=trigger, recover=recover, check=run_export_check
    )
    # The deliveries that queued it (a single check: most often a webhook's) follow its outcome.
    webhook_deliveries_settle(
        results={company_id: result}, received_before=picked_up_at, look_first=False
    )
    heartbeat.beat()
    return result.outcome


def run_company_checks(
    company_ids: list[int],
    trigger: str,
    recover: bool = False,
    queued_at: datetime | None = None,
) -> str:
    """One task, several companies (the poll tick's batches), one after the other."""
    started = time.monotonic()
    picked_up_at = clock.now()
    clear_queued_markers(company_ids, queued_at)
    by_id = {
        company.pk: company
        for company in Company.objects.select_related("credential").filter(
            pk__in=company_ids, active=True
        )
    }
    outcomes: Counter[str] = Counter()
    results = {}
    ordered = [pk for pk in company_ids if pk in by_id]
    for index, company_id in enumerate(ordered):
        if index and time.monotonic() - started > BATCH_SECONDS:
            rest = ordered[index:]
            enqueue_company_checks(
                company_ids=rest, trigger=trigger, recover=recover, batch_size=len(rest)
            )
            outcomes["handed back"] += len(rest)
            break
        # Guarded: one company's unexpected exception is its failed outcome, not the batch's end
        # (batches go by id, so the same companies would starve on every tick).
        result = company_check_guarded(
            company=by_id[company_id], trigger=trigger, recover=recover, check=run_export_check
        )
        outcomes[result.outcome] += 1
        results[company_id] = result
    # Deliveries that coalesced into these checks follow them: one read for the batch, and a
    # write only for the companies that have some.
    webhook_deliveries_settle(results=results, received_before=picked_up_at, look_first=True)
    heartbeat.beat()
    return ", ".join(f"{outcome}: {count}" for outcome, count in sorted(outcomes.items()))


def poll_slices() -> int:
    configured = int(getattr(settings, "PLEO_POLL_SLICES", 0) or 0)
    return max(1, configured or int(settings.PLEO_POLL_INTERVAL_MINUTES))


def _queue_slices(*, round_start: datetime, upto: int, now: datetime) -> int:
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
    return enqueue_company_checks(
        company_ids=ids, trigger=Trigger.SCHEDULE, batch_size=settings.PLEO_POLL_BATCH_SIZE
    )


def poll_tick() -> int:
    """The polling schedule: start a round; its first slice is queued now, the rest later."""
    now = clock.now()
    queued = _queue_slices(round_start=now, upto=0, now=now)
    heartbeat.tick_completed()  # the round's start, read by poll_due_slices
    logger.info("Poll tick queued %d company check(s) (slice 1 of %d)", queued, poll_slices())
    return queued


def poll_due_slices(now: datetime | None = None) -> int:
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
    queued = _queue_slices(round_start=round_start, upto=upto, now=now)
    if queued:
        logger.info("Poll round: queued %d company check(s) of slices up to %d", queued, upto + 1)
    return queued


def maintenance() -> int:
    """Every minute: the worker's heartbeat, the recovery sweep and the poll round's slices."""
    heartbeat.beat()
    swept = sweep_stale_leases()
    poll_due_slices()
    notifications_maintenance()  # retries and digests; never raises
    return swept
