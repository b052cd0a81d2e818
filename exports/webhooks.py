"""The webhook view: ``POST /webhooks/pleo/<endpoint uuid>/``.

Order: method (405), the three Standard Webhooks headers (400), body size (413: Content-Length
first, then the bytes actually read), endpoint lookup together with the company the body names
(404), signature against the endpoint's active secrets (401), then
:func:`exports.services.webhooks.webhook_delivery_receive` stores and enqueues, and the
answer is 2xx at once (503 when the broker refused, so Pleo retries). The export flow never runs
here.

The view is CSRF-exempt (the signature is the authentication) and not wrapped in a request
transaction, so the stored delivery survives whatever happens after it. Rejections are counted
per reason and logged at WARNING without the body or the signature header.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from django.db import transaction
from django.http import HttpRequest, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables

from exports import clock, webhook_signing
from exports.crypto import EncryptionKeysMissing, SecretDecryptionError
from exports.services.webhooks import (
    active_webhook_secrets,
    webhook_delivery_receive,
    webhook_target_find,
)

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
REQUIRED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")

_rejections: Counter[str] = Counter()
_rejections_lock = threading.Lock()


def rejection_counts() -> dict[str, int]:
    """Rejected requests since the process started (or the last reset), per reason."""
    with _rejections_lock:
        return dict(_rejections)


def reset_rejection_counts() -> None:
    with _rejections_lock:
        _rejections.clear()


def _reject(
    request: HttpRequest, status: int, reason: str, detail: str, endpoint_uuid=None
) -> JsonResponse:
    with _rejections_lock:
        _rejections[reason] += 1
        total = _rejections[reason]
    msg_id = request.headers.get("webhook-id") or ""
    logger.warning(
        "Webhook rejected with %s (%s, %d so far): %s [endpoint=%s webhook-id=%r remote=%s]",
        status,
        reason,
        total,
        detail,
        endpoint_uuid,
        msg_id[:80],
        request.META.get("REMOTE_ADDR", "?"),
    )
    return JsonResponse({"error": reason, "detail": detail}, status=status)


def _content_length(request: HttpRequest) -> int | None:
    raw = request.META.get("CONTENT_LENGTH")
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return -1
    return value


@csrf_exempt
@transaction.non_atomic_requests
@sensitive_variables("signature", "secrets")
def pleo_webhook(request: HttpRequest, endpoint_uuid):
    if request.method != "POST":
        response = HttpResponseNotAllowed(["POST"])
        _reject(request, 405, "method_not_allowed", f"{request.method} is not accepted")
        return response

    missing = [name for name in REQUIRED_HEADERS if not request.headers.get(name, "").strip()]
    if missing:
        return _reject(request, 400, "missing_header", f"missing {', '.join(missing)}")

    length = _content_length(request)
    if length is not None and length < 0:
        return _reject(request, 400, "bad_content_length", "Content-Length is not a number")
    if length is not None and length > MAX_BODY_BYTES:
        return _reject(
            request, 413, "body_too_large", f"Content-Length {length} > {MAX_BODY_BYTES}"
        )
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return _reject(request, 413, "body_too_large", f"body larger than {MAX_BODY_BYTES} bytes")

    target = webhook_target_find(endpoint_uuid, body)
    if target is None:
        return _reject(request, 404, "unknown_endpoint", "no such webhook endpoint", endpoint_uuid)
    endpoint = target.endpoint

    now = clock.now()
    try:
        secrets = active_webhook_secrets(endpoint, now=now)
    except (SecretDecryptionError, EncryptionKeysMissing) as exc:
        # Any key problem (none set, malformed, the encrypting key removed) is ours: Pleo sends
        # the delivery again later. EncryptionKeysInvalid is an EncryptionKeysMissing.
        logger.error("Webhook endpoint %s: signing secrets unreadable: %s", endpoint.pk, exc)
        return JsonResponse(
            {"error": "temporarily_unavailable"}, status=503, headers={"Retry-After": "60"}
        )
    msg_id = request.headers["webhook-id"]
    signature = request.headers["webhook-signature"]
    try:
        timestamp = webhook_signing.verify(
            secrets,
            msg_id=msg_id,
            timestamp=request.headers["webhook-timestamp"],
            signature=signature,
            body=body,
            now=now,
        )
    except webhook_signing.WebhookVerificationError as exc:
        return _reject(request, 401, exc.reason, str(exc), endpoint_uuid)

    received = webhook_delivery_receive(target=target, webhook_id=msg_id, timestamp=timestamp)
    delivery = received.delivery
    if received.enqueue_failed:
        detail = (
            "stored; the check could not be queued"
            if received.stored
            else "not stored: the check could not be queued; send it again"
        )
        return JsonResponse(
            {"status": "enqueue_failed", "detail": detail},
            status=503,
            headers={"Retry-After": "60"},
        )
    return JsonResponse(
        {"status": "duplicate" if received.duplicate else delivery.state},
        status=200,
    )
