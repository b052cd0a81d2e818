"""django-q2 entry points: thin. Load by id, call a service.

The poll tick and the every-minute maintenance start and continue a polling round spread over
the interval in slices: :mod:`exports.services.polling`. Slices go out
``PLEO_POLL_BATCH_SIZE`` companies per task (:func:`run_company_checks`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime

from exports import clock
from exports.models import Company
from exports.notifications.service import notifications_maintenance
from exports.services import heartbeat
from exports.services.company_guard import company_check_guarded
from exports.services.delivery_states import webhook_deliveries_settle
from exports.services.dispatch import (
    company_checks_enqueue,
    queued_marker_clear,
    queued_markers_clear,
)
from exports.services.polling import poll_round_queue_due, poll_round_start
from exports.services.start_flow import company_check_run
from exports.services.sweep import leases_sweep_stale

logger = logging.getLogger(__name__)

# A batch task hands what is left of its batch back to the queue after this long, so one slow
# company (a big job to carry) does not hold the others past the task timeout.
BATCH_SECONDS = 120.0


def run_company_check(
    company_id: int, trigger: str, recover: bool = False, queued_at: datetime | None = None
) -> str:
    picked_up_at = clock.now()
    queued_marker_clear(company_id=company_id, queued_at=queued_at)
    company = (
        Company.objects.select_related("credential").filter(pk=company_id, active=True).first()
    )
    if company is None:
        return "skipped: company inactive or gone"
    result = company_check_guarded(
        company=company, trigger=trigger, recover=recover, check=company_check_run
    )
    # The deliveries that queued it (a single check: most often a webhook's) follow its outcome.
    webhook_deliveries_settle(
        results={company_id: result}, received_before=picked_up_at, look_first=False
    )
    heartbeat.heartbeat_beat()
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
    queued_markers_clear(company_ids=company_ids, queued_at=queued_at)
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
            company_checks_enqueue(
                company_ids=rest, trigger=trigger, recover=recover, batch_size=len(rest)
            )
            outcomes["handed back"] += len(rest)
            break
        # Guarded: one company's unexpected exception is its failed outcome, not the batch's end
        # (batches go by id, so the same companies would starve on every tick).
        result = company_check_guarded(
            company=by_id[company_id], trigger=trigger, recover=recover, check=company_check_run
        )
        outcomes[result.outcome] += 1
        results[company_id] = result
    # Deliveries that coalesced into these checks follow them: one read for the batch, and a
    # write only for the companies that have some.
    webhook_deliveries_settle(results=results, received_before=picked_up_at, look_first=True)
    heartbeat.heartbeat_beat()
    return ", ".join(f"{outcome}: {count}" for outcome, count in sorted(outcomes.items()))


def poll_tick() -> int:
    """The polling schedule: start a round; its first slice is queued now, the rest later."""
    return poll_round_start()


def poll_due_slices(now: datetime | None = None) -> int:
    """Queue the slices of the current round whose time has come (called every minute)."""
    return poll_round_queue_due(now=now)


def maintenance() -> int:
    """Every minute: the worker's heartbeat, the recovery sweep and the poll round's slices."""
    heartbeat.heartbeat_beat()
    swept = leases_sweep_stale()
    poll_due_slices()
    notifications_maintenance()  # retries and digests; never raises
    return swept


def xero_sync_daily() -> str:
    """Daily: sync every usable Xero connection (accounts, tax rates, tracking categories)."""
    from exports.services.xero_sync import xero_sync_all

    results = xero_sync_all()
    return f"{sum(r.ok for r in results)} of {len(results)} Xero connections synced"
