"""The expiry guard's reckoning (exports.services.expiry_guard), without HTTP: which deadline it
keeps after an early report, and when it stops booking. The end-to-end cases are in
``tests/test_pleo_tolerance_lifecycle.py``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from exports import clock
from exports.pleo import ExportJob, JobStatus
from exports.services.expiry_guard import DeadlineGuard

T0 = datetime(2025, 5, 23, 12, 0, tzinfo=UTC)


class Job:
    pleo_job_id = uuid.UUID(int=1)
    expires_in = 3600


class Guard(DeadlineGuard):
    def __init__(self, touched):
        self.job = Job()
        self.touched = touched
        self.audits = []

    def audit(self, step, message, **kwargs):
        self.audits.append((step, message, kwargs.get("outcome")))


def remote(last_updated_at):
    return ExportJob(
        id=uuid.UUID(int=1),
        company_id=uuid.UUID(int=2),
        status=JobStatus.IN_PROGRESS,
        created_at=T0 - timedelta(hours=5),
        expires_in=3600,
        is_interactive=True,
        number_of_items=6,
        vendor_based_bookkeeping=False,
        last_updated_at=last_updated_at,
    )


@pytest.fixture
def at(monkeypatch):
    moment = {"now": T0}
    monkeypatch.setattr(clock, "now", lambda: moment["now"])
    return moment


def test_a_moved_deadline_is_trusted_and_never_later_than_our_own(at):
    guard = Guard(touched=T0)
    at["now"] = T0 + timedelta(minutes=31)
    guard.mark_touched()  # the early report was accepted
    guard.note_refresh(T0 + timedelta(hours=1), remote(T0 + timedelta(minutes=30, seconds=50)))
    assert guard.audits[0][0] == "deadline_checked"
    assert guard.deadline_fixed is None
    assert guard.deadline() == T0 + timedelta(minutes=90, seconds=50)  # Pleo's, the earlier
    assert not guard.must_stop_booking()


def test_an_unmoved_deadline_is_kept_and_later_updates_do_not_move_it(at, settings):
    settings.EXPIRY_CLOCK_SKEW_SECONDS = 60
    guard = Guard(touched=T0)
    at["now"] = T0 + timedelta(minutes=31)
    guard.mark_touched()
    guard.note_refresh(T0 + timedelta(hours=1), remote(T0 - timedelta(seconds=2)))
    step, message, _ = guard.audits[0]
    assert step == "deadline_not_refreshed" and "did not move its deadline" in message
    kept = T0 + timedelta(hours=1) - timedelta(seconds=2)  # Pleo's, the earlier of the two
    assert guard.deadline() == kept
    guard.mark_touched()  # a later report does not move it either
    assert guard.deadline() == kept
    guard.slowest_item = 300
    # 420 s margin (10 % of 3600 + 60 s skew) plus 300 s for the next item.
    at["now"] = kept - timedelta(seconds=721)
    assert not guard.must_stop_booking()
    at["now"] = kept - timedelta(seconds=720)
    assert guard.must_stop_booking()


def test_without_last_updated_at_the_old_deadline_is_kept(at):
    guard = Guard(touched=T0)
    guard.note_refresh(T0 + timedelta(hours=1), remote(None))
    step, message, _ = guard.audits[0]
    assert step == "deadline_not_refreshed" and "no lastUpdatedAt" in message
    assert guard.deadline() == T0 + timedelta(hours=1)  # not createdAt + expiresIn (past)
