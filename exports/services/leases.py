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

``MAX_CONCURRENT_COMPANIES`` (0: no bound) bounds how many companies hold a live lease at once,
across every process and machine: acquisition counts the live leases in the same transaction
(serialised by SQLite's single writer, or by a transaction-scoped advisory lock on PostgreSQL)
and, at the bound, raises :class:`RunDeferred` instead of waiting. The caller records when the
company may run again (:func:`lease_defer`) and the sweep picks it up then.
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


class RunDeferred(Exception):
    """The run may not go now (no lease taken); ``retry_at`` says when it may."""

    def __init__(self, message: str, *, retry_at: datetime) -> None:
        super().__init__(message)
        self.retry_at = retry_at


# A run over MAX_CONCURRENT_COMPANIES is deferred by this long (the sweep runs every minute).
CONCURRENCY_DEFER_SECONDS = 15.0
# Any constant shared by every process: the key of the PostgreSQL advisory lock that serialises
# lease acquisitions while MAX_CONCURRENT_COMPANIES is set.
_ACQUIRE_LOCK_KEY = 0x504C454F  # "PLEO"


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


def lease_max_concurrent() -> int:
    return max(0, int(settings.MAX_CONCURRENT_COMPANIES or 0))


def lease_live_count(*, now: datetime | None = None) -> int:
    now = now or clock.now()
    return Company.objects.filter(lease_token__isnull=False, lease_expires_at__gte=now).count()


def _at_concurrency_bound(bound: int, now: datetime) -> bool:
    """Inside the acquisition transaction: are ``bound`` companies already running?"""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ACQUIRE_LOCK_KEY])
    return lease_live_count(now=now) >= bound


def lease_acquire(*, company_id: int, trigger: str) -> Lease | None:
    """Take the company's lease, or flag a recheck for the holder and return None (busy).

    Raises :class:`RunDeferred` when ``MAX_CONCURRENT_COMPANIES`` companies already run.
    """
    bound = lease_max_concurrent()
    for _ in range(3):
        token = uuid.uuid4()
        now = clock.now()
        deadline = now + lease_duration()
        over_bound = False
        with transaction.atomic():
            if bound:
                over_bound = _at_concurrency_bound(bound, now)
            else:
                _lock_company_row(company_id)
            taken = 0
            if not over_bound:
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
        if (
            over_bound
            and not Company.objects.filter(
                pk=company_id, lease_token__isnull=False, lease_expires_at__gte=now
            ).exists()
        ):
            raise RunDeferred(
                f"{bound} companies are running already (MAX_CONCURRENT_COMPANIES)",
                retry_at=now + timedelta(seconds=CONCURRENCY_DEFER_SECONDS),
            )
        flagged = Company.objects.filter(pk=company_id, lease_token__isnull=False).update(
            recheck_requested=True, recheck_trigger=trigger
        )
        if flagged:
            return None
        # The holder released between our two statements: try to take it again.
    return None


@dataclass(frozen=True)
class CheckRecord:
    """What releasing the lease records as the company's last check: the run's ``outcome`` and
    ``error``, whether work is left (``work_pending``; ``not_before``: the sweep does not pick
    the company up before then) and the failing state (``failing`` True or False; None leaves
    it: ``services.failing``)."""

    outcome: str
    error: str = ""
    work_pending: bool = False
    not_before: datetime | None = None
    failing: bool | None = None

    def released(self, lease: Lease, now: datetime) -> dict:
        """The fields of a released lease with this check recorded (and the failing state)."""
        return {
            "lease_token": None,
            "lease_expires_at": None,
            "lease_holder": "",
            "last_check_at": now,
            "last_check_outcome": self.outcome,
            "last_check_error": self.error[:2000],
            "work_pending": self.work_pending,
            "next_run_not_before": self.not_before,
            **self._failing(lease, now),
        }

    def _failing(self, lease: Lease, now: datetime) -> dict:
        if self.failing is None:
            return {}
        from exports.services.failing import job_failing_fields

        return job_failing_fields(
            company_id=lease.company_id,
            failing=self.failing,
            error=self.error,
            work_pending=self.work_pending,
            not_before=self.not_before,
            now=now,
        )


def lease_release_or_recheck(*, lease: Lease, check: CheckRecord) -> bool:
    """Release the lease and record the ``check``, unless a recheck was requested meanwhile.

    Returns True when the holder must run again (a trigger arrived while it worked): the lease is
    then kept and renewed. Recording the last check (and the failing state) happens in the same
    UPDATE that releases.
    """
    now = clock.now()
    with transaction.atomic():
        _lock_company_row(lease.company_id)
        released = Company.objects.filter(
            pk=lease.company_id, lease_token=lease.token, recheck_requested=False
        ).update(**check.released(lease, now))
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


def lease_release(*, lease: Lease, check: CheckRecord) -> None:
    """Release unconditionally, recording the ``check`` (used in ``finally`` after a failure);
    never raises LeaseLost."""
    now = clock.now()
    Company.objects.filter(pk=lease.company_id, lease_token=lease.token).update(
        **check.released(lease, now)
    )


def lease_defer(*, company_id: int, not_before: datetime, outcome: str, reason: str) -> None:
    """A run that could not take the lease now (over the bound): the sweep runs it later.

    Only a free company is marked; one whose lease someone took meanwhile is being run anyway.
    """
    Company.objects.filter(pk=company_id, lease_token__isnull=True).update(
        work_pending=True,
        next_run_not_before=not_before,
        last_check_at=clock.now(),
        last_check_outcome=outcome,
        last_check_error=reason[:2000],
    )
