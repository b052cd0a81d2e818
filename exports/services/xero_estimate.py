"""The Xero calls a job's items need, and the room Xero's budgets leave before a deadline: what
the Xero adapter's ``estimate_calls`` and ``call_room`` answer (``exports.adapters.base``; the
lifecycle compares them in ``exports.services.expiry_guard``).

Counted the way :class:`~exports.services.xero_booking.XeroBookingSession` calls, item by item in
booking order:

* an item with a booking row for its idempotency key (a run stopped while booking it): one read
  (the lookup of the interrupted booking) and its receipts not attached yet; no write;
* an item whose ``accountingEntryId`` Xero has a document for (a re-export): one read (the
  document, to see it is not voided) and its receipts not attached yet; no write;
* any other: the organisation read once (with the first item planned), its document planned as
  the session plans it (an item the session would refuse makes no call), for a bill whose vendor
  has no contact in the mapping yet: the contact found by account number, by name, else created
  (three calls, once per vendor code; a vendor without a code is searched by name for every item,
  and created once), one write per kind of document per batch (``max_batch`` items, the first
  item alone when ``first_alone``: the lifecycle's early report books it before the batch is
  full) and one call per receipt within Xero's attachment size and count (the sizes Pleo
  declares; an item with a file over them and ``RECEIPTS_REQUIRED`` on is refused: no call).

An estimate, not a promise: a contact or an interrupted booking Xero already has, a receipt that
cannot be downloaded, an item the mapping check refuses count calls that are not made; an early
report in the middle of a batch makes one write more. ``tests/xero/test_estimate.py`` holds it to
the local Xero's own count of a real job.

The room: each budget of the organisation (:class:`~exports.services.xero_connections.XeroBudget`:
its minute, its day, the app's minute) grants so many calls within the time
(:meth:`~exports.services.budget.Rate.room` on the key's backlog, nothing taken); the least of
them. The day's budget is not waited for inside a run, so ``now`` is what it grants at once and
``ready_at`` when it grants ``at_once`` calls.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings

from exports import clock
from exports.adapters.base import AttachmentLimits, BookingRequest, CallEstimate, CallRoom
from exports.adapters.journal import Unbookable
from exports.models import XeroBooking, XeroConnection
from exports.receipts.fetch import file_refs
from exports.services import budget
from exports.services.xero_connections import xero_budget_hook
from exports.services.xero_documents import plan_document
from exports.xero.models import PleoCodeKind

# Calls to find or create a supplier contact: by account number, by name, created.
CONTACT_CALLS_WITH_CODE = 3
BUDGET_NAMES = ("minute", "day", "app minute")


def _entry(request: BookingRequest) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(request.accounting_entry_id))
    except ValueError:
        return None


def _attachments(request: BookingRequest, limits: AttachmentLimits) -> int | None:
    """Receipts the session attaches for ``request``; None when the item is refused for them."""
    refs = file_refs(request.item)
    if not refs or limits.max_count == 0:
        return 0
    # The content type is sniffed after the download: only size and count are judged here.
    bounds = AttachmentLimits(max_bytes=limits.max_bytes, max_count=limits.max_count)
    problems = bounds.judge([(ref.declared_size or 0, ref.declared_type) for ref in refs])
    if problems and settings.RECEIPTS_REQUIRED:
        return None
    return len(refs) - len({problem.position for problem in problems})


class _Count:
    def __init__(self, session, batch: int, first_alone: bool) -> None:
        self.session, self.batch, self.first_alone = session, batch, first_alone
        self.writes = self.attachments = self.reads = 0
        self.slot = 0  # items handed to book_batch so far
        self.batch_kinds: tuple[int, set] = (-1, set())
        self.organisation_read = False
        self.vendor_codes: set[str] = set()
        self.vendor_names: set[str] = set()

    def known(self, booking: XeroBooking, files: int, *, slot: bool) -> int:
        self.reads += 1
        attach = max(0, files - len(booking.attached or []))
        self.attachments += attach
        self.slot += 1 if slot else 0
        return 1 + attach

    def fresh(self, request: BookingRequest, files: int) -> int:
        calls = 0
        if not self.organisation_read:
            self.organisation_read = True
            self.reads += 1
            calls += 1
        session = self.session
        try:
            plan = plan_document(request.item, codes=session.code, options=session.options())
        except Unbookable:
            return calls
        if plan.vendor is not None:
            calls += self.contact(plan.vendor)
        if self.first_alone:  # the first item a batch of its own, then full batches
            number = 0 if self.slot == 0 else 1 + (self.slot - 1) // self.batch
        else:
            number = self.slot // self.batch
        self.slot += 1
        if self.batch_kinds[0] != number:
            self.batch_kinds = (number, set())
        if plan.kind not in self.batch_kinds[1]:
            self.batch_kinds[1].add(plan.kind)
            self.writes += 1
            calls += 1
        self.attachments += files
        return calls + files

    def contact(self, vendor) -> int:
        code = str(vendor.get("code") or "").strip()
        name = str(vendor.get("name") or code or "Pleo supplier").strip()[:255].lower()
        if code:
            if self.session.code(PleoCodeKind.VENDOR, code) or code in self.vendor_codes:
                return 0
            self.vendor_codes.add(code)
            self.reads += 2
            self.writes += 1
            return CONTACT_CALLS_WITH_CODE
        self.reads += 1
        if name in self.vendor_names:
            return 1
        self.vendor_names.add(name)
        self.writes += 1
        return 2


def xero_calls_estimate(
    *,
    session,
    requests: Sequence[BookingRequest],
    limits: AttachmentLimits,
    batch: int,
    first_alone: bool = False,
) -> CallEstimate:
    """The calls ``session`` makes booking ``requests`` in this order (module docstring)."""
    keys = [request.idempotency_key for request in requests]
    by_key = {b.idempotency_key: b for b in XeroBooking.objects.filter(idempotency_key__in=keys)}
    connection = session.connection
    entries = {entry for entry in map(_entry, requests) if entry is not None}
    earlier = {
        b.accounting_entry_id: b  # the newest last: the one the session finds
        for b in XeroBooking.objects.filter(
            connection=connection,
            tenant_id=connection.tenant_id,
            accounting_entry_id__in=entries,
            document_id__isnull=False,
        ).order_by("id")
    }
    count = _Count(session, max(1, batch), first_alone)
    item_calls = []
    for request in requests:
        files = _attachments(request, limits)
        if files is None:
            item_calls.append(0)
        elif request.idempotency_key in by_key:
            item_calls.append(count.known(by_key[request.idempotency_key], files, slot=False))
        elif _entry(request) in earlier:
            item_calls.append(count.known(earlier[_entry(request)], files, slot=True))
        else:
            item_calls.append(count.fresh(request, files))
    return CallEstimate(
        item_calls=tuple(item_calls),
        writes=count.writes,
        attachments=count.attachments,
        reads=count.reads,
    )


def xero_call_room(*, connection: XeroConnection, seconds: float, at_once: int = 1) -> CallRoom:
    """What the organisation's budgets grant within ``seconds`` (module docstring)."""
    hook = xero_budget_hook(connection=connection)
    now = clock.now()
    if hook is None:  # no organisation chosen: validation refuses the job before this
        return CallRoom(calls=0, now=0, ready_at=now, description="no Xero organisation")
    within, at_once_room, ready_at, parts = [], [], now, []
    for (budget_hook, waitable), name in zip(hook.budgets, BUDGET_NAMES, strict=True):
        rate = budget_hook.rate
        backlog = budget.budget_backlog(key=budget_hook.key)
        room = rate.room(backlog=backlog, within=seconds)
        within.append(room)
        text = f"{name} {rate.limit} per {_window(rate.window)}: room for {room} calls"
        if not waitable:
            at_once_room.append(rate.room(backlog=backlog, within=0))
            text += f" ({at_once_room[-1]} at once)"
            wait = rate.seconds_for(backlog=backlog, calls=max(1, at_once))
            ready_at = max(ready_at, now + timedelta(seconds=wait))
        parts.append(text)
    return CallRoom(
        calls=min(within),
        now=min(at_once_room) if at_once_room else min(within),
        ready_at=ready_at,
        description="; ".join(parts),
    )


def _window(seconds: float) -> str:
    return "day" if seconds == 86400 else "minute" if seconds == 60 else f"{seconds:g} s"
