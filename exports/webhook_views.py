"""The webhook view: ``POST /webhooks/pleo/<endpoint uuid>/``.

Order: method (405), the three Standard Webhooks headers (400), body size (413: Content-Length
first, then the bytes actually read; 400 when the body cannot be read, 411 for a chunked body
the server does not end), endpoint lookup together with the company the body names (404),
signature against the endpoint's active secrets (401), then
:func:`exports.services.webhooks.webhook_delivery_receive` stores and enqueues, and the
answer is 2xx at once. The export flow never runs here.

No request content, signed or not, makes a 5xx or an ERROR log line: a body that cannot be
parsed names no company (routed by the endpoint alone), and once verified it is stored as
``ignored`` with the reason. Faults on our side (signing secrets that cannot be read, the
database or the broker unavailable) answer 503 with ``Retry-After``, so Pleo sends it again.

A chunked body (``Transfer-Encoding: chunked``, no Content-Length) is read when the server ends
``wsgi.input`` at the body's end and says so (``wsgi.input_terminated``: gunicorn does), with the
same size limit while reading; a server that does not (runserver) gets 411.

The view is CSRF-exempt (the signature is the authentication) and not wrapped in a request
transaction, so the stored delivery survives whatever happens after it. Rejections are counted
per reason and logged at WARNING without the body or the signature header; 401, 413 and 404 are
also tallied in memory and written at most once a minute (``exports.rejections.counter``), so
unauthenticated traffic never costs a database write per request.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from django.core.exceptions import ImproperlyConfigured
from django.db import InterfaceError, OperationalError, transaction
from django.http import HttpRequest, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables

from exports import clock, webhook_signing
from exports.crypto import SecretDecryptionError
from exports.rejections.counter import rejection_note, rejections_flush_if_due
from exports.services.webhooks import (
    webhook_delivery_receive,
    webhook_secrets_active,
    webhook_target_find,
)

# The log keeps its name from before the module was renamed (log routing and alerts use it).
logger = logging.getLogger("exports.webhooks")

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
    rejection_note(status=status, endpoint_uuid=endpoint_uuid)  # in memory; flushed each minute
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


RETRY_AFTER_SECONDS = 60
# Reading our own stored signing secrets failed: a key problem (missing, malformed or rotated
# away), or the decrypted text is not the list it should be. Our fault, not the sender's.
_SECRETS_UNREADABLE = (
    SecretDecryptionError,
    ImproperlyConfigured,
    ValueError,
    TypeError,
    AttributeError,
)
# The database cannot be reached (not a query our input broke: those would be bugs to fix).
_DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


class BodyRejected(Exception):
    def __init__(self, status: int, reason: str, detail: str):
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


def _unavailable(what: str, exc: Exception, endpoint_uuid) -> JsonResponse:
    """A fault on our side: 503 with Retry-After (Pleo sends the delivery again), logged at
    ERROR with our own message for it (never a driver's or a parser's, which may quote data)."""
    own = isinstance(exc, SecretDecryptionError | ImproperlyConfigured)
    detail = str(exc) if own else type(exc).__name__
    logger.error("Webhook to endpoint %s: %s: %s", endpoint_uuid, what, detail)
    return JsonResponse(
        {"error": "temporarily_unavailable"},
        status=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _content_length(request: HttpRequest) -> int | None:
    raw = request.META.get("CONTENT_LENGTH")
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return -1
    return value


def _read_body(request: HttpRequest) -> bytes:
    """The request's body, at most :data:`MAX_BODY_BYTES`; raises :class:`BodyRejected`.

    With a Content-Length, Django's stream (cut at that length) is read. Without one, the body
    is chunked or absent: read from ``wsgi.input`` when the server ends it there
    (``wsgi.input_terminated``, gunicorn), under ASGI from the request (the server has read
    it), and a chunked body on a server that does neither is refused (411) rather than read
    as empty. Reading stops one byte past the limit, whatever the framing says.
    """
    length = _content_length(request)
    if length is not None and length < 0:
        raise BodyRejected(
            400, webhook_signing.RejectReason.BAD_CONTENT_LENGTH, "Content-Length is not a number"
        )
    if length is not None and length > MAX_BODY_BYTES:
        raise BodyRejected(
            413,
            webhook_signing.RejectReason.BODY_TOO_LARGE,
            f"Content-Length {length} > {MAX_BODY_BYTES}",
        )
    stream = request
    wsgi_input = request.META.get("wsgi.input")
    if length is None and wsgi_input is not None:
        if request.META.get("wsgi.input_terminated"):
            stream = wsgi_input
        elif "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            raise BodyRejected(
                411,
                webhook_signing.RejectReason.LENGTH_REQUIRED,
                "a chunked body needs a server that ends it (gunicorn); send Content-Length",
            )
    try:
        body = _read_at_most(stream, MAX_BODY_BYTES + 1)
    except Exception as exc:  # a server's framing error, a reset: the sender's doing
        raise BodyRejected(
            400,
            webhook_signing.RejectReason.UNREADABLE_BODY,
            f"the body could not be read ({type(exc).__name__})",
        ) from None
    if len(body) > MAX_BODY_BYTES:
        raise BodyRejected(
            413,
            webhook_signing.RejectReason.BODY_TOO_LARGE,
            f"body larger than {MAX_BODY_BYTES} bytes",
        )
    return body


def _read_at_most(stream, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``stream``, whatever size each read returns."""
    chunks, total = [], 0
    while total < limit:
        chunk = stream.read(limit - total)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@csrf_exempt
@transaction.non_atomic_requests
@sensitive_variables("signature", "secrets")
def pleo_webhook(request: HttpRequest, endpoint_uuid):
    if request.method != "POST":
        response = HttpResponseNotAllowed(["POST"])
        _reject(
            request,
            405,
            webhook_signing.RejectReason.METHOD_NOT_ALLOWED,
            f"{request.method} is not accepted",
        )
        return response

    missing = [name for name in REQUIRED_HEADERS if not request.headers.get(name, "").strip()]
    if missing:
        return _reject(
            request,
            400,
            webhook_signing.RejectReason.MISSING_HEADER,
            f"missing {', '.join(missing)}",
        )

    try:
        body = _read_body(request)
    except BodyRejected as rejected:
        return _reject(request, rejected.status, rejected.reason, rejected.detail, endpoint_uuid)

    try:
        target = webhook_target_find(endpoint_uuid=endpoint_uuid, body=body)
    except _DATABASE_UNAVAILABLE as exc:
        return _unavailable("the database is unavailable", exc, endpoint_uuid)
    if target is None:
        return _reject(
            request,
            404,
            webhook_signing.RejectReason.UNKNOWN_ENDPOINT,
            "no such webhook endpoint",
            endpoint_uuid,
        )
    endpoint = target.endpoint

    now = clock.now()
    try:
        secrets = webhook_secrets_active(endpoint=endpoint, now=now)
    except _SECRETS_UNREADABLE as exc:
        return _unavailable("its signing secrets cannot be read", exc, endpoint_uuid)
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

    try:
        received = webhook_delivery_receive(target=target, webhook_id=msg_id, timestamp=timestamp)
    except _DATABASE_UNAVAILABLE as exc:
        return _unavailable("the database is unavailable", exc, endpoint_uuid)
    delivery = received.delivery
    rejections_flush_if_due()  # this process's tally of rejected requests, once a minute
    if received.enqueue_failed:
        detail = (
            "stored; the check could not be queued"
            if received.stored
            else "not stored: the check could not be queued; send it again"
        )
        return JsonResponse(
            {"status": "enqueue_failed", "detail": detail},
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return JsonResponse(
        {"status": "duplicate" if received.duplicate else delivery.state},
        status=200,
    )
