"""The company lease: one run per company at a time, across processes and machines.

Taking the lease is one compare-and-set UPDATE (no owner, or deadline passed) inside a short
transaction that also takes the company row with ``select_for_update`` on PostgreSQL. On SQLite
``select_for_update`` does nothing; the compare-and-set (and SQLite's single writer, taken at BEGIN
with ``transaction_mode=IMMEDIATE``) is what guards it there.

The owner token is a fresh UUID per run; host and pid are for display only. Every later write of
the run goes through :meth:`Lease.guard`, which checks the token in the same transaction, so a
holder that stalled past its deadline and lost the lease cannot write any more.

A trigger that finds the company leased does not wait: it sets ``recheck_requested`` and returns
"busy". The holder releases with :func:`lease_release_or_recheck`, which releases only when no
recheck was requested; otherwise the holder lists again. No webhook or click is lost.
"""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from exports import clock
from exports.audit import worker_identity
from exports.models import Company

logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """The run's lease was taken over (it expired while the holder stalled)."""


def lease_duration() -> timedelta:
    return timedelta(seconds=settings.COMPANY_LEASE_SECONDS)


def _lock_company_row(company_id: int) -> None:
    """Take the company row lock on backends that have row locks (PostgreSQL)."""
    if connection.features.has_select_for_update:
        list(Company.objects.select_for_update().filter(pk=company_id).values_list("pk"))


@dataclass
class Lease:
    company_id: int
    token: uuid.UUID
    expires_at: datetime
    _renewed_monotonic: float = field(default_factory=time.monotonic)

    def renew(self) -> None:
        """Push the deadline forward; raises :class:`LeaseLost` if the token is no longer ours."""
        deadline = clock.now() + lease_duration()
        with transaction.atomic():
            _lock_company_row(self.company_id)
            updated = Company.objects.filter(pk=self.company_id, lease_token=self.token).update(
                lease_expires_at=deadline
            )
        if not updated:
            raise LeaseLost(f"lease on company {self.company_id} was taken over")
        self.expires_at = deadline
        self._renewed_monotonic = time.monotonic()

    def renew_if_due(self) -> None:
        if time.monotonic() - self._renewed_monotonic >= settings.COMPANY_LEASE_RENEW_SECONDS:
            self.renew()

    @contextmanager
    def guard(self):
        """A transaction in which the run's writes happen only while it still holds the lease."""
        with transaction.atomic():
            _lock_company_row(self.company_id)
            if not Company.objects.filter(pk=self.company_id, lease_token=self.token).exists():
                raise LeaseLost(f"lease on company {self.company_id} was taken over")
            yield


def lease_acquire(*, company_id: int, trigger: str) -> Lease | None:
    """Take the company's lease, or flag a recheck for the holder and return None (busy)."""
    for _ in range(3):
        token = uuid.uuid4()
        now = clock.now()
        deadline = now + lease_duration()
        with transaction.atomic():
            _lock_company_row(company_id)
            taken = (
                Company.objects.filter(pk=company_id)
                .filter(Q(lease_token__isnull=True) | Q(lease_expires_at__lt=now))
                .update(
                    lease_token=token,
                    lease_expires_at=deadline,
                    lease_holder=worker_identity(),
                    recheck_requested=False,
                    recheck_trigger="",
                )
            )
        if taken:
            return Lease(company_id=company_id, token=token, expires_at=deadline)
        flagged = Company.objects.filter(pk=company_id, lease_token__isnull=False).update(
            recheck_requested=True, recheck_trigger=trigger
        )
        if flagged:
            return None
        # The holder released between our two statements: try to take it again.
    return None


def lease_release_or_recheck(
    lease: Lease, *, outcome: str, error: str = "", work_pending: bool = False
) -> bool:
    """Release the lease and record the check, unless a recheck was requested meanwhile.

    Returns True when the holder must run again (a trigger arrived while it worked): the lease is
    then kept and renewed. Recording the last check happens in the same UPDATE that releases.
    """
    now = clock.now()
    with transaction.atomic():
        _lock_company_row(lease.company_id)
        released = Company.objects.filter(
            pk=lease.company_id, lease_token=lease.token, recheck_requested=False
        ).update(
            lease_token=None,
            lease_expires_at=None,
            lease_holder="",
            last_check_at=now,
            last_check_outcome=outcome,
            last_check_error=error[:2000],
            work_pending=work_pending,
        )
        if released:
            return False
        again = Company.objects.filter(
            pk=lease.company_id, lease_token=lease.token, recheck_requested=True
        ).update(
            recheck_requested=False, recheck_trigger="", lease_expires_at=now + lease_duration()
        )
    if again:
        lease.expires_at = now + lease_duration()
        lease._renewed_monotonic = time.monotonic()
        return True
    raise LeaseLost(f"lease on company {lease.company_id} was taken over before release")


def lease_release(
    lease: Lease, *, outcome: str, error: str = "", work_pending: bool = False
) -> None:
    """Release unconditionally (used in ``finally`` after a failure); never raises LeaseLost."""
    Company.objects.filter(pk=lease.company_id, lease_token=lease.token).update(
        lease_token=None,
        lease_expires_at=None,
        lease_holder="",
        last_check_at=clock.now(),
        last_check_outcome=outcome,
        last_check_error=error[:2000],
        work_pending=work_pending,
    )
