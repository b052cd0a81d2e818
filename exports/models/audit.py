"""The append-only audit table: one row per step of a run."""

from __future__ import annotations

from django.db import models

from exports.choices import AuditOutcome, AuditStep, Trigger
from exports.models.companies import Company
from exports.models.fields import optional_foreign_key
from exports.models.jobs import ExportJob


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("Audit entries are append-only: they cannot be updated.")

    def delete(self):
        raise PermissionError(
            "Audit entries are append-only: only the retention command prunes them."
        )

    def prune_older_than(self, cutoff) -> int:
        """The one way audit rows leave: a bulk delete of rows older than ``cutoff``."""
        deleted, _ = models.QuerySet.delete(self.filter(created_at__lt=cutoff))
        return deleted


class AuditEntry(models.Model):
    """One step of one run, for one company (and job). Append-only, enforced here."""

    Outcome = AuditOutcome

    created_at = models.DateTimeField(db_index=True)
    company = optional_foreign_key(Company, on_delete=models.PROTECT, related_name="audit_entries")
    export_job = optional_foreign_key(
        ExportJob, on_delete=models.PROTECT, related_name="audit_entries"
    )
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    step = models.CharField(max_length=40, db_index=True, choices=AuditStep.choices)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.OK)
    http_method = models.CharField(max_length=10, blank=True)
    http_path = models.CharField(max_length=300, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    run_id = models.UUIDField(null=True, blank=True, db_index=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.step} {self.outcome}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("Audit entries are append-only: they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit entries are append-only: only the retention command prunes.")
