"""django-q2 entry points: thin. Load by id, call a service."""

from __future__ import annotations

import logging

from exports.models import Company, Trigger
from exports.services import heartbeat
from exports.services.dispatch import clear_queued_marker, enqueue_company_check
from exports.services.start_flow import run_export_check
from exports.services.sweep import sweep_stale_leases

logger = logging.getLogger(__name__)


def run_company_check(company_id: int, trigger: str, recover: bool = False) -> str:
    clear_queued_marker(company_id)
    company = (
        Company.objects.select_related("credential").filter(pk=company_id, active=True).first()
    )
    if company is None:
        return "skipped: company inactive or gone"
    result = run_export_check(company=company, trigger=trigger, recover=recover)
    heartbeat.beat()
    return result.outcome


def poll_tick() -> int:
    """The polling schedule: fan out one coalesced check per active company."""
    queued = 0
    for company_id in Company.objects.filter(active=True).values_list("pk", flat=True):
        if enqueue_company_check(company_id=company_id, trigger=Trigger.SCHEDULE):
            queued += 1
    heartbeat.tick_completed()
    logger.info("Poll tick queued %d company check(s)", queued)
    return queued


def maintenance() -> int:
    """Every minute: the worker's heartbeat and the recovery sweep."""
    heartbeat.beat()
    return sweep_stale_leases()
