"""A webhook delivery's state follows the check it queued.

A delivery is stored ``enqueued`` when its company's check is queued (or already was). The worker
that finishes a check of the company settles every delivery of that company still ``enqueued``
that was received before the check was picked up (the check listed the company's jobs after
that, so it saw what the delivery announced): ``processed``, or ``failed`` with the check's
reason. A check that did not run (``busy``: another run holds the lease and lists again;
``deferred``: the budget is spent, the sweep runs it later) settles nothing; the next one does.

Cost: one UPDATE per company that has deliveries to settle, and for a poll batch (many companies
whose checks no webhook asked for) one SELECT for the whole batch first, so a batch with nothing
to settle pays one indexed read, not a write per company (``exports.tasks``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from django.db import DatabaseError

from exports.models import WebhookDelivery
from exports.services.runs import FlowResult, Outcome

logger = logging.getLogger(__name__)

State = WebhookDelivery.State

# The check ran and failed, or the job it carried failed: the delivery failed, with the reason.
FAILED_OUTCOMES = Outcome.FAILURES
# The check did not run: the delivery waits for the next one.
NOT_RUN_OUTCOMES = frozenset({Outcome.BUSY, Outcome.DEFERRED})
MAX_ERROR = 2000


def _failure_text(result: FlowResult) -> str:
    reason = result.error or "no reason was recorded"
    if result.outcome == Outcome.FAILED_JOB:
        text = f"The job of the check it queued failed ({result.outcome}): {reason}"
    else:
        text = f"The check it queued failed ({result.outcome}): {reason}"
    return text[:MAX_ERROR]


def webhook_deliveries_settle(
    *,
    results: Mapping[int, FlowResult],
    received_before: datetime,
    look_first: bool,
) -> int:
    """Settle the ``enqueued`` deliveries of the companies of ``results`` (company id -> its
    finished check) received before ``received_before`` (when the checks were picked up).
    Returns how many.

    ``look_first``: read which of the companies have such deliveries before writing (a poll
    batch); otherwise write straight away (a single check, most often one a webhook queued).
    """
    try:
        return _settle(results, received_before, look_first=look_first)
    except DatabaseError as exc:  # the checks are done and recorded; the next one settles these
        logger.error("Webhook deliveries not settled: %s", type(exc).__name__)
        return 0


def _settle(
    results: Mapping[int, FlowResult], received_before: datetime, *, look_first: bool
) -> int:
    settled = {pk: r for pk, r in results.items() if r.outcome not in NOT_RUN_OUTCOMES}
    if not settled:
        return 0
    pending = WebhookDelivery.objects.filter(state=State.ENQUEUED, received_at__lte=received_before)
    if look_first:
        with_deliveries = set(
            pending.filter(company_id__in=list(settled))
            .values_list("company_id", flat=True)
            .distinct()
        )
        settled = {pk: r for pk, r in settled.items() if pk in with_deliveries}
        if not settled:
            return 0
    count = 0
    processed = [pk for pk, r in settled.items() if r.outcome not in FAILED_OUTCOMES]
    if processed:
        count += pending.filter(company_id__in=processed).update(state=State.PROCESSED, error="")
    for pk, result in settled.items():
        if result.outcome in FAILED_OUTCOMES:
            count += pending.filter(company_id=pk).update(
                state=State.FAILED, error=_failure_text(result)
            )
    if count:
        logger.info("%d webhook deliveries settled by their check", count)
    return count
