"""Received webhook deliveries: store, route, deduplicate, enqueue (and reprocess).

The view (``exports.webhooks``) verifies the signature and calls :func:`webhook_delivery_receive`
with the raw bytes. The delivery row is committed before anything is enqueued; the export flow
itself never runs in the request. A webhook is only a hint: the queued check re-reads Pleo.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction

from exports import clock
from exports.models import Company, Trigger, WebhookDelivery, WebhookEndpoint
from exports.services.dispatch import EnqueueFailed, enqueue_company_check

logger = logging.getLogger(__name__)

# Pleo's pages name the one event four ways (reference §5.1): all are accepted alike.
EXPORT_JOB_CREATED_EVENT_TYPES = frozenset(
    {
        "v1.export-job.created",
        "export-job.created",
        "v1.export.job-created",
        "v2.export-job.created",
    }
)
# A delivery stored as "received" whose enqueue never finished (the process died in between)
# may be enqueued again by a retry of the same webhook id after this long.
STALE_RECEIVED_AFTER = timedelta(minutes=2)

State = WebhookDelivery.State


class WebhookReprocessError(Exception):
    """A delivery cannot be reprocessed; the message says why (shown to the operator)."""


@dataclass(frozen=True)
class DeliveryReceived:
    delivery: WebhookDelivery
    duplicate: bool
    enqueued: bool

    @property
    def enqueue_failed(self) -> bool:
        return self.delivery.state == State.ENQUEUE_FAILED


# --- Secrets -----------------------------------------------------------------------------------


def secret_retire_after(entry: dict) -> datetime | None:
    """When the secret stops being accepted (None: never). Unreadable counts as retired."""
    value = entry.get("retire_after")
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        logger.error("A webhook signing secret has an unreadable retire_after: treated as retired")
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def active_webhook_secrets(endpoint: WebhookEndpoint, *, now: datetime | None = None) -> list[str]:
    """The endpoint's signing secrets that verification may use: not retired at ``now``."""
    now = now or clock.now()
    active = []
    for entry in endpoint.secret_entries():
        retire_after = secret_retire_after(entry)
        if retire_after is not None and retire_after <= now:
            continue
        if entry.get("secret"):
            active.append(entry["secret"])
    return active


# --- Routing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    text: str
    event_type: str
    company: Company | None
    pleo_job_id: uuid.UUID | None
    ignore_reason: str


def _as_uuid(value) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _route(endpoint: WebhookEndpoint, body: bytes) -> _Route:
    """Read the body and find the company; an unusable delivery gets an ``ignore_reason``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
        return _Route(text, "", None, None, "The body is not UTF-8 text.")
    # PostgreSQL text cannot hold NUL; the stored copy replaces it (the signature was checked).
    text_stored = text.replace("\x00", "\ufffd")
    try:
        payload = json.loads(text)
    except ValueError:
        return _Route(text_stored, "", None, None, "The body is not JSON.")
    if not isinstance(payload, dict):
        return _Route(text_stored, "", None, None, "The body is not a JSON object.")

    event_type = payload.get("eventType")
    event_type = event_type[:100].replace("\x00", "\ufffd") if isinstance(event_type, str) else ""
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    pleo_job_id = _as_uuid(data.get("id"))

    def ignored(reason: str, company: Company | None = None) -> _Route:
        return _Route(text_stored, event_type, company, pleo_job_id, reason)

    if event_type not in EXPORT_JOB_CREATED_EVENT_TYPES:
        shown = event_type or "none"
        return ignored(f"Unknown event type ({shown[:100]}): not an export-job event.")
    company_id = _as_uuid(data.get("companyId"))
    if company_id is None:
        return ignored("The event has no valid data.companyId.")
    company = Company.objects.filter(
        credential_id=endpoint.credential_id, pleo_company_id=company_id
    ).first()
    if company is None:
        return ignored(f"Unknown company {company_id}: not one of this credential's companies.")
    if not company.active:
        return ignored(f"Company {company.name} ({company_id}) is inactive.", company)
    return _Route(text_stored, event_type, company, pleo_job_id, "")


# --- Receiving ---------------------------------------------------------------------------------


def webhook_delivery_receive(
    *, endpoint: WebhookEndpoint, webhook_id: str, timestamp: int, body: bytes
) -> DeliveryReceived:
    """Store a verified delivery (once per webhook id), then enqueue a check of its company.

    The row and the company's queued marker are written in ONE transaction and the task is sent
    when it commits (so the worker finds the row). A duplicate webhook id (the unique constraint
    says so) enqueues nothing, unless its first enqueue failed (or never finished), in which case
    it is enqueued again. A delivery that cannot be routed is stored as ``ignored`` with the
    reason. When the broker refuses, the delivery stays, marked ``enqueue_failed``.
    """
    route = _route(endpoint, body)
    delivery = WebhookDelivery(
        endpoint=endpoint,
        webhook_id=webhook_id,
        webhook_timestamp=datetime.fromtimestamp(timestamp, tz=UTC),
        event_type=route.event_type,
        body=route.text,
        received_at=clock.now(),
        company=route.company,
        pleo_job_id=route.pleo_job_id,
        state=State.IGNORED if route.ignore_reason else State.ENQUEUED,
        error=route.ignore_reason,
    )
    queued = False
    try:
        with transaction.atomic():
            delivery.save(force_insert=True)
            if not route.ignore_reason:
                queued = enqueue_company_check(
                    company_id=delivery.company_id, trigger=Trigger.WEBHOOK
                )
    except IntegrityError:
        # This webhook id was stored before (a retry), or concurrently by another request.
        existing = WebhookDelivery.objects.filter(endpoint=endpoint, webhook_id=webhook_id).first()
        if existing is None:
            raise
        return _receive_duplicate(existing)
    except EnqueueFailed as exc:
        # Raised by the on-commit send: the row is committed; record why nothing was queued.
        _mark_enqueue_failed(delivery, exc)
        return DeliveryReceived(delivery=delivery, duplicate=False, enqueued=False)

    if route.ignore_reason:
        logger.info(
            "Webhook %s on endpoint %s ignored: %s", webhook_id, endpoint.pk, route.ignore_reason
        )
        return DeliveryReceived(delivery=delivery, duplicate=False, enqueued=False)
    if not queued:
        logger.info(
            "Webhook %s: a check of company %s is already queued", webhook_id, delivery.company_id
        )
    return DeliveryReceived(delivery=delivery, duplicate=False, enqueued=True)


def _mark_enqueue_failed(delivery: WebhookDelivery, exc: Exception) -> None:
    error = f"Could not enqueue a check of the company: {exc}"[:2000]
    WebhookDelivery.objects.filter(pk=delivery.pk).update(state=State.ENQUEUE_FAILED, error=error)
    delivery.state, delivery.error = State.ENQUEUE_FAILED, error
    logger.error("Webhook %s stored but not enqueued: %s", delivery.webhook_id, exc)


def _receive_duplicate(existing: WebhookDelivery) -> DeliveryReceived:
    retry_states = [State.ENQUEUE_FAILED]
    stale = existing.state == State.RECEIVED and (
        existing.received_at < clock.now() - STALE_RECEIVED_AFTER
    )
    if existing.state == State.ENQUEUE_FAILED or stale:
        if stale:
            retry_states.append(State.RECEIVED)
        # Only one of several concurrent retries takes it over.
        taken = WebhookDelivery.objects.filter(
            pk=existing.pk, state__in=retry_states, company__isnull=False
        ).update(state=State.RECEIVED, error="")
        if taken:
            existing.refresh_from_db()
            logger.info(
                "Webhook %s received again after an unfinished enqueue: enqueueing again",
                existing.webhook_id,
            )
            return DeliveryReceived(delivery=existing, duplicate=True, enqueued=_enqueue(existing))
    logger.info("Webhook %s is a duplicate: nothing enqueued", existing.webhook_id)
    return DeliveryReceived(delivery=existing, duplicate=True, enqueued=False)


def _enqueue(delivery: WebhookDelivery, *, trigger: str = Trigger.WEBHOOK) -> bool:
    """Mark a stored delivery enqueued and send the check on commit; on a broker failure mark it
    ``enqueue_failed`` (committed separately, so it survives) and return False."""
    try:
        with transaction.atomic():
            WebhookDelivery.objects.filter(pk=delivery.pk).update(state=State.ENQUEUED, error="")
            queued = enqueue_company_check(company_id=delivery.company_id, trigger=trigger)
    except EnqueueFailed as exc:
        _mark_enqueue_failed(delivery, exc)
        return False
    delivery.state, delivery.error = State.ENQUEUED, ""
    if not queued:
        logger.info(
            "Webhook %s: a check of company %s is already queued (or the company is inactive)",
            delivery.webhook_id,
            delivery.company_id,
        )
    return True


# --- Operator actions --------------------------------------------------------------------------

REPROCESSABLE_STATES = (State.FAILED, State.ENQUEUE_FAILED)


def webhook_delivery_reprocess(delivery: WebhookDelivery) -> str:
    """Enqueue a check of the delivery's company again (for failed / enqueue_failed deliveries).

    Returns a message for the operator; raises :class:`WebhookReprocessError` when it cannot.
    """
    delivery.refresh_from_db()
    label = f"Delivery {delivery.webhook_id}"
    if delivery.state not in REPROCESSABLE_STATES:
        raise WebhookReprocessError(
            f"{label} is {delivery.get_state_display().lower()}; only failed deliveries and "
            f"deliveries whose enqueue failed can be reprocessed."
        )
    company = delivery.company
    if company is None:
        raise WebhookReprocessError(f"{label} is not linked to a company: nothing to check.")
    if not company.active:
        raise WebhookReprocessError(f"{label}: company {company.name} is inactive.")
    if not _enqueue(delivery, trigger=Trigger.MANUAL):
        raise WebhookReprocessError(
            f"{label}: the check of {company.name} could not be queued ({delivery.error}). "
            f"Is the worker's broker reachable?"
        )
    return f"{label}: a check of {company.name} is queued."
