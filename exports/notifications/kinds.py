"""What a notification can be about."""

from __future__ import annotations

from django.db import models


class Kind(models.TextChoices):
    JOB_FAILED = "job_failed", "Job failed or expired"
    ITEMS_FAILED = "items_failed", "Items failed in a job"
    REAUTHORISATION = "reauthorisation", "Credential needs re-authorisation"
    JOB_AT_RISK = "job_at_risk", "Job at risk of expiry"
    BLOCKED_ELSEWHERE = "blocked_elsewhere", "Company blocked by a job owned elsewhere"
    SERVICE_UNHEALTHY = "service_unhealthy", "Worker or poll tick missing"
    RECONCILIATION_FLAGGED = "reconciliation_flagged", "Reconciliation found differences"


# Conditions rather than events: they are observed again on every poll (or every minute, for
# notify_health) while they last. Within the window a repeated observation records nothing (no
# digest of "still blocked" rows); the next message after the window says it still holds.
CONDITIONS = frozenset({Kind.BLOCKED_ELSEWHERE, Kind.SERVICE_UNHEALTHY})
