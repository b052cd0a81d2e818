"""The states the sandboxes speak, one ``StrEnum`` each: never a bare string for a state.

A member is a ``str`` equal to its value, so JSON shows the value and a string from a request
compares equal to it: the wire is unchanged. Standard library only; ``TokenStatus`` is shared
with ``xero_sandbox`` (its refresh tokens have the same three states).
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """An export job's ``status`` (``ExportJobV3``); ``EXPIRED`` only with the
    ``expired_status`` switch (:mod:`pleo_sandbox.variants`)."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    FAILED = "failed"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    EXPIRED = "expired"


class JobEvent(StrEnum):
    """What a job's event log records: the four events an integration posts
    (:data:`pleo_sandbox.entities.JOB_EVENTS`), and ``created`` and ``expired``, which only
    Pleo's side records."""

    STARTED = "started"
    FAILED = "failed"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    CREATED = "created"
    EXPIRED = "expired"


class ItemStatus(StrEnum):
    """An export job item's ``status`` (``ExportJobItemV3``)."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    FAILED = "failed"
    SUCCESSFUL = "successful"
    ABANDONED = "abandoned"


class SubscriptionStatus(StrEnum):
    """A webhook subscription's ``status``."""

    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class DeliveryOutcome(StrEnum):
    """The ``outcome`` of one webhook delivery attempt (``webhook_deliveries()``)."""

    DELIVERED = "delivered"
    RETRYING = "retrying"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TokenStatus(StrEnum):
    """An OAuth refresh token's status: usable, exchanged for a successor, or revoked."""

    ACTIVE = "active"
    ROTATED = "rotated"
    REVOKED = "revoked"
