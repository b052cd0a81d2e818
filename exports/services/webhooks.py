"""Received webhook deliveries: store, route, deduplicate, enqueue (and reprocess).

The view (``exports.webhook_views``) verifies the signature and calls
:func:`webhook_delivery_receive` with the raw bytes. The worker never sees a task before its
delivery row (the ORM broker's task commits with the row; another broker's is sent when the row
has committed); the export flow itself never runs in the request. A webhook is only a hint: the
queued check re-reads Pleo.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.utils.dateparse import parse_datetime

from exports import clock
from exports.models import Company, Trigger, WebhookDelivery, WebhookEndpoint
from exports.services.dispatch import (
    EnqueueFailed,
    company_check_enqueue,
    queued_marker_stale_before,
    task_commits_with_transaction,
)

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
    # False: the broker failed inside the delivery's transaction, which rolled back (the ORM
    # broker: the task would have committed with the row); Pleo's retry brings it again.
    stored: bool = True

    @property
    def enqueue_failed(self) -> bool:
        return not self.stored or self.delivery.state == State.ENQUEUE_FAILED


# --- Secrets -----------------------------------------------------------------------------------


def webhook_secret_retire_after(*, entry: dict) -> datetime | None:
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


def webhook_secrets_active(*, endpoint: WebhookEndpoint, now: datetime | None = None) -> list[str]:
    """The endpoint's signing secrets that verification may use: not retired at ``now``."""
    now = now or clock.now()
    active = []
    for entry in endpoint.secret_entries():
        retire_after = webhook_secret_retire_after(entry=entry)
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


@dataclass(frozen=True)
class WebhookTarget:
    """What one delivery to an endpoint URL needs: the endpoint (its id and encrypted signing
    secrets) and the route of the body (the company it names, or why it is ignored).

    Found by :func:`webhook_target_find` with one query in the common case, *before* the
    signature is checked: routing only reads; nothing is stored or logged until the view has
    verified the delivery against ``endpoint``'s secrets.
    """

    endpoint: WebhookEndpoint
    route: _Route
    # How far the queue has got (exports.services.dispatch), read with the company.
    queue_progress: datetime | None = None


def _as_uuid(value) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _endpoint_from_row(values) -> WebhookEndpoint:
    return WebhookEndpoint.from_db(
        "default", ["id", "credential_id", "signing_secrets_ciphertext"], list(values)
    )


@functools.cache
def _target_sql() -> str:
    """The common case's one query: the company named by the body, joined with the endpoint of
    its credential. Plain SQL (names from the models' metadata): building the same query with
    the ORM cost more than the rest of the request together (benchmark 2)."""
    company, endpoint = Company._meta, WebhookEndpoint._meta

    def col(meta, name):
        return f"{meta.db_table}.{meta.get_field(name).column}"

    progress = company.get_field("check_picked_queued_at").column
    columns = ", ".join(
        [
            *(col(company, name) for name in ("id", "name", "active", "credential")),
            col(company, "check_queued_at"),
            f"{col(endpoint, 'id')} AS endpoint_pk",
            f"{col(endpoint, 'signing_secrets_ciphertext')} AS endpoint_ciphertext",
            f"(SELECT MAX({progress}) FROM {company.db_table}) AS queue_progress",  # noqa: S608
        ]
    )
    # Names only, from the models' metadata; the values are bound parameters.
    return (
        f"SELECT {columns} FROM {company.db_table} INNER JOIN {endpoint.db_table} "  # noqa: S608
        f"ON {col(endpoint, 'credential')} = {col(company, 'credential')} "
        f"WHERE {col(endpoint, 'uuid')} = %s AND {col(company, 'pleo_company_id')} = %s"
    )


def webhook_target_find(*, endpoint_uuid, body: bytes) -> WebhookTarget | None:
    """The endpoint at ``endpoint_uuid`` and the route of ``body``; None: no such endpoint.

    The company named by the body is read together with its credential's endpoint (one query);
    only a body that names no known company of this endpoint costs a second one. Both read
    just the columns a delivery needs (this is the webhook's hot path: benchmark 2).
    """
    parsed = _parse(body)
    company_id = parsed.company_id
    if company_id is not None:
        params = [
            WebhookEndpoint._meta.get_field("uuid").get_db_prep_value(endpoint_uuid, connection),
            Company._meta.get_field("pleo_company_id").get_db_prep_value(company_id, connection),
        ]
        company = next(iter(Company.objects.raw(_target_sql(), params)), None)
        if company is not None:
            endpoint = _endpoint_from_row(
                (company.endpoint_pk, company.credential_id, company.endpoint_ciphertext)
            )
            progress = _as_aware_datetime(company.queue_progress)
            return WebhookTarget(endpoint, _route(parsed, company, company_id), progress)
    row = WebhookEndpoint.objects.filter(uuid=endpoint_uuid).values_list(
        "pk", "credential_id", "signing_secrets_ciphertext"
    )[:1]
    row = next(iter(row), None)
    if row is None:
        return None
    return WebhookTarget(_endpoint_from_row(row), _route(parsed, None, company_id))


def _as_aware_datetime(value) -> datetime | None:
    """A timestamp column read by plain SQL: SQLite gives text (UTC), PostgreSQL a datetime."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = parse_datetime(str(value))
    if parsed is None:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Parsed:
    text: str
    event_type: str
    pleo_job_id: uuid.UUID | None
    company_id: uuid.UUID | None
    error: str


def storable_text(text: str) -> str:
    """``text`` as both databases store it: NUL (PostgreSQL text cannot hold it) becomes U+FFFD
    and a lone surrogate (no UTF-8 encoding exists for it: both drivers refuse it) is escaped as
    ``\\udXXX``. Any string a request brought must pass here before it is stored or logged."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return text


def _parse(body: bytes) -> _Parsed:
    """Read the body: its text as stored, event type, job and company ids, or why unusable.

    Never raises, whatever the bytes: this runs before the signature is checked, and a body it
    cannot read names no company (the delivery is routed by its endpoint alone).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
        return _Parsed(text, "", None, None, "The body is not UTF-8 text.")
    # PostgreSQL text cannot hold NUL; the stored copy replaces it (the signature was checked).
    # (Strict UTF-8 decoding never yields a lone surrogate, so NUL is all there is to replace.)
    text_stored = text.replace("\x00", "\ufffd")
    try:
        payload = json.loads(text)
    except ValueError:
        return _Parsed(text_stored, "", None, None, "The body is not JSON.")
    except RecursionError:
        # The C decoder counts its depth against the recursion limit and stops cleanly; a real
        # event nests three levels. (Cheaper than a depth scan of every body beforehand.)
        return _Parsed(text_stored, "", None, None, "The body is not JSON: nested too deeply.")
    if not isinstance(payload, dict):
        return _Parsed(text_stored, "", None, None, "The body is not a JSON object.")

    event_type = payload.get("eventType")
    # JSON escapes may hold NUL or a lone surrogate: escaped first, then cut to the column.
    event_type = storable_text(event_type)[:100] if isinstance(event_type, str) else ""
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    pleo_job_id = _as_uuid(data.get("id"))
    if event_type not in EXPORT_JOB_CREATED_EVENT_TYPES:
        shown = event_type or "none"
        return _Parsed(
            text_stored,
            event_type,
            pleo_job_id,
            None,
            f"Unknown event type ({shown[:100]}): not an export-job event.",
        )
    company_id = _as_uuid(data.get("companyId"))
    if company_id is None:
        return _Parsed(
            text_stored, event_type, pleo_job_id, None, "The event has no valid data.companyId."
        )
    return _Parsed(text_stored, event_type, pleo_job_id, company_id, "")


def _route(parsed: _Parsed, company: Company | None, company_id: uuid.UUID | None) -> _Route:
    """The route of a parsed body, given the company found for it (None: none of this
    endpoint's credential's companies)."""

    def ignored(reason: str, company: Company | None = None) -> _Route:
        return _Route(parsed.text, parsed.event_type, company, parsed.pleo_job_id, reason)

    if parsed.error:
        return ignored(parsed.error)
    if company is None:
        return ignored(f"Unknown company {company_id}: not one of this credential's companies.")
    if not company.active:
        return ignored(f"Company {company.name} ({company_id}) is inactive.", company)
    return _Route(parsed.text, parsed.event_type, company, parsed.pleo_job_id, "")


# --- Receiving ---------------------------------------------------------------------------------


def _check_already_queued(company: Company | None, progress: datetime | None) -> bool:
    """The company's queued marker, as read with the delivery's target, says a check is queued
    (and not lost: :func:`exports.services.dispatch.queued_marker_stale_before`).

    Then the delivery needs no marker write and no task: the queued check lists the company's
    jobs when it starts, which is after this read, so it sees the job this webhook announces.
    """
    queued_at = company.check_queued_at if company is not None else None
    return queued_at is not None and queued_at >= queued_marker_stale_before(
        now=clock.now(), progress=progress
    )


def webhook_delivery_receive(
    *, target: WebhookTarget, webhook_id: str, timestamp: int
) -> DeliveryReceived:
    """Store a verified delivery (once per webhook id), then enqueue a check of its company.

    The row, the company's queued marker and (with the ORM broker) the task are written in ONE
    transaction; another broker gets the task when it commits (so the worker finds the row).
    When the company's check is already queued (the marker read with the target is fresh), or
    the delivery is ignored, the row is the only write. A duplicate webhook id (the unique
    constraint says so) enqueues nothing, unless its first enqueue failed (or never finished),
    in which case it is enqueued again. A delivery that cannot be routed is stored as
    ``ignored`` with the reason. When the broker refuses, the delivery stays, marked
    ``enqueue_failed`` (with the ORM broker, the whole transaction rolls back instead: nothing
    is stored, and the view's 503 makes Pleo send it again).
    """
    route, endpoint = target.route, target.endpoint
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
    coalesced = not route.ignore_reason and _check_already_queued(
        route.company, target.queue_progress
    )
    queued = False
    try:
        with transaction.atomic():
            delivery.save(force_insert=True)
            if not (route.ignore_reason or coalesced):
                queued = company_check_enqueue(
                    company_id=delivery.company_id,
                    trigger=Trigger.WEBHOOK,
                    progress=target.queue_progress,
                )
    except IntegrityError:
        # This webhook id was stored before (a retry), or concurrently by another request.
        existing = WebhookDelivery.objects.filter(endpoint=endpoint, webhook_id=webhook_id).first()
        if existing is None:
            raise
        return _receive_duplicate(existing)
    except EnqueueFailed as exc:
        if task_commits_with_transaction():
            # Raised inside the transaction: the row rolled back with the task.
            logger.error("Webhook %s not stored: its check was not queued: %s", webhook_id, exc)
            return DeliveryReceived(
                delivery=delivery, duplicate=False, enqueued=False, stored=False
            )
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
    """Mark a stored delivery enqueued and queue the check with it; on a broker failure mark it
    ``enqueue_failed`` (committed separately, so it survives) and return False."""
    try:
        with transaction.atomic():
            WebhookDelivery.objects.filter(pk=delivery.pk).update(state=State.ENQUEUED, error="")
            queued = company_check_enqueue(company_id=delivery.company_id, trigger=trigger)
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


def webhook_delivery_reprocess(*, delivery: WebhookDelivery) -> str:
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
