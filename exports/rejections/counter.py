"""Counting rejected webhook requests without a write per request.

The webhook view is open to the Internet: whoever sends garbage must not cost us a database write
each time. :func:`rejection_note` adds to a per-process tally in memory (a dict under a lock);
the tally is written to ``WebhookRejectionCount`` by :func:`rejections_flush`, which runs at most
once every :data:`FLUSH_INTERVAL_SECONDS` per process: from the next webhook request (rejected or
not) once the interval has passed, or from an admin page that shows the counts (when served by
the same process). Counts therefore reach the pages within about a minute of the next request to
the same process. (The worker's maintenance task cannot flush them: the tally lives in the web
process's memory.) A flush that fails puts its counts back;
a process that ends loses what it counted since its last flush (at most a minute's worth).

Counted: 401 (the signature did not verify) and 413 (body too large) per endpoint, 404 (no such
endpoint) globally. A 413 to a URL that names no endpoint is counted globally too.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest

from exports import clock

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 60.0
PER_ENDPOINT = frozenset({401, 413})
GLOBAL = frozenset({404})

_lock = threading.Lock()
# (endpoint uuid as text, or None for global; status) -> [count, first_at, last_at]
_pending: dict[tuple[str | None, int], list] = {}
_last_flush = time.monotonic()


def rejection_note(*, status: int, endpoint_uuid=None) -> None:
    """Count one rejected request (only the statuses counted; others are ignored). Cheap: no
    database work unless this process's flush is due."""
    if status in PER_ENDPOINT and endpoint_uuid is not None:
        key = (str(endpoint_uuid), status)
    elif status in GLOBAL or status in PER_ENDPOINT:
        key = (None, status)
    else:
        return
    now = clock.now()
    with _lock:
        entry = _pending.get(key)
        if entry is None:
            _pending[key] = [1, now, now]
        else:
            entry[0] += 1
            entry[2] = now
    rejections_flush_if_due()


def rejections_flush_if_due() -> int:
    """:func:`rejections_flush` when something is pending and the interval has passed."""
    if not _pending or time.monotonic() - _last_flush < FLUSH_INTERVAL_SECONDS:
        return 0
    return rejections_flush()


def pending_counts() -> dict[tuple[str | None, int], int]:
    """What this process has counted and not written yet (tests, diagnostics)."""
    with _lock:
        return {key: entry[0] for key, entry in _pending.items()}


def rejections_flush() -> int:
    """Write this process's tally now; returns how many rejections were written."""
    global _last_flush
    with _lock:
        taken = dict(_pending)
        _pending.clear()
        _last_flush = time.monotonic()
    if not taken:
        return 0
    try:
        _write(taken)
    except DatabaseError as exc:
        logger.warning(
            "Rejected-webhook counts not written (kept for later): %s", type(exc).__name__
        )
        _put_back(taken)
        return 0
    return sum(entry[0] for entry in taken.values())


def _put_back(taken: dict) -> None:
    with _lock:
        for key, (count, first_at, last_at) in taken.items():
            entry = _pending.get(key)
            if entry is None:
                _pending[key] = [count, first_at, last_at]
            else:
                entry[0] += count
                entry[1] = min(entry[1], first_at)
                entry[2] = max(entry[2], last_at)


def _write(taken: dict) -> None:
    from exports.models import WebhookEndpoint, WebhookRejectionCount

    uuids = {uuid for uuid, _ in taken if uuid is not None}
    endpoints = {}
    if uuids:
        endpoints = {
            str(uuid): pk
            for uuid, pk in WebhookEndpoint.objects.filter(uuid__in=uuids).values_list("uuid", "pk")
        }
    merged: dict[tuple[int | None, int], list] = {}
    for (uuid, status), (count, first_at, last_at) in taken.items():
        key = (endpoints.get(uuid) if uuid is not None else None, status)
        entry = merged.setdefault(key, [0, first_at, last_at])
        entry[0] += count
        entry[1], entry[2] = min(entry[1], first_at), max(entry[2], last_at)
    for (endpoint_pk, status), (count, first_at, last_at) in merged.items():
        _add(WebhookRejectionCount, endpoint_pk, status, count, first_at, last_at)


def _add(model, endpoint_pk, status, count: int, first_at: datetime, last_at: datetime) -> None:
    key = model.key_for(endpoint_pk, status)
    rows = model.objects.filter(key=key)
    update = {"count": F("count") + count, "last_at": Greatest("last_at", Value(last_at))}
    if rows.update(**update):
        return
    try:
        with transaction.atomic():
            model.objects.create(
                key=key,
                endpoint_id=endpoint_pk,
                status=status,
                count=count,
                first_at=first_at,
                last_at=last_at,
            )
    except IntegrityError:  # another process created it meanwhile
        rows.update(**update)


def reset_for_tests() -> None:
    global _last_flush
    with _lock:
        _pending.clear()
        _last_flush = time.monotonic()
