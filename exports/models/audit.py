"""The append-only audit table: one row per step of a run."""

from __future__ import annotations

from django.db import models

from exports.models.companies import Company, Trigger
from exports.models.fields import optional_foreign_key
from exports.models.jobs import ExportJob


class AuditStep(models.TextChoices):
    """Every step an audit entry can name, in the order a run meets them. The values are what
    operators, the README and tests read and filter by: they never change, and the admin shows
    them as they are (each label is its value)."""

    # Picking a job (exports.services.job_start, start_flow, claims_recovery)
    DEFERRED = "deferred", "deferred"
    SELECTED = "selected", "selected"
    OWNED_ELSEWHERE = "owned_elsewhere", "owned_elsewhere"
    FINISHED_ELSEWHERE = "finished_elsewhere", "finished_elsewhere"
    NOT_FOUND = "not_found", "not_found"
    EXPIRED = "expired", "expired"
    STARTED = "started", "started"
    START_CONFLICT = "start_conflict", "start_conflict"
    START_UNKNOWN = "start_unknown", "start_unknown"
    ADOPTED = "adopted", "adopted"
    # Carrying it (exports.services.lifecycle*)
    VALIDATED = "validated", "validated"
    VALIDATION_FAILED = "validation_failed", "validation_failed"
    ITEMS_READ = "items_read", "items_read"
    EXPORT_ITEMS_READ = "export_items_read", "export_items_read"
    EXPORT_ITEMS_REFUSED = "export_items_refused", "export_items_refused"
    JOB_REFUSED = "job_refused", "job_refused"
    REPORT_EARLY = "report_early", "report_early"
    AT_RISK = "at_risk", "at_risk"
    DEADLINE_CHECKED = "deadline_checked", "deadline_checked"
    DEADLINE_NOT_REFRESHED = "deadline_not_refreshed", "deadline_not_refreshed"
    DEADLINE_GUARD = "deadline_guard", "deadline_guard"
    CALLS_ESTIMATED = "calls_estimated", "calls_estimated"
    ITEM_RECOVERED = "item_recovered", "item_recovered"
    ITEM_FAILED = "item_failed", "item_failed"
    # An item found booked earlier (a re-export), or booked on a moved date (Xero's lock date)
    ITEM_BOOKED_NOTE = "item_booked_note", "item_booked_note"
    # Receipts (exports.services.lifecycle_receipts)
    RECEIPT_NOTE = "receipt_note", "receipt_note"
    RECEIPTS_ARCHIVED_ONLY = "receipts_archived_only", "receipts_archived_only"
    BATCH_TOO_LARGE = "batch_too_large", "batch_too_large"
    REPORT_UNKNOWN = "report_unknown", "report_unknown"
    ITEMS_REPORTED = "items_reported", "items_reported"
    ITEM_REPORT_REJECTED = "item_report_rejected", "item_report_rejected"
    REPORT_RECONCILED = "report_reconciled", "report_reconciled"
    PAUSED = "paused", "paused"
    # Its end (exports.services.lifecycle_final)
    COMPLETED = "completed", "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors", "completed_with_errors"
    JOB_FAILED = "job_failed", "job_failed"
    FINISH_UNKNOWN = "finish_unknown", "finish_unknown"
    FINISH_REFUSED = "finish_refused", "finish_refused"
    JOB_ENDED = "job_ended", "job_ended"
    # Items booked by hand, or booked before this job booked them (exports.services.settlement)
    ITEM_ALREADY_BOOKED = "item_already_booked", "item_already_booked"
    ITEM_BOOKED_BY_HAND = "item_booked_by_hand", "item_booked_by_hand"
    MANUAL_BOOKING_FORGOTTEN = "manual_booking_forgotten", "manual_booking_forgotten"
    # Unknown statuses (exports.services.unknown_status)
    UNKNOWN_STATUS = "unknown_status", "unknown_status"
    UNKNOWN_STATUS_CLEARED = "unknown_status_cleared", "unknown_status_cleared"
    RELEASED = "released", "released"
    # Xero (exports.services.xero_connections, xero_sync): connecting, each call, each sync
    XERO_CONNECTION = "xero_connection", "xero_connection"
    XERO_CALL = "xero_call", "xero_call"
    XERO_SYNC = "xero_sync", "xero_sync"
    # Any step that failed unexpectedly
    ERROR = "error", "error"


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

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

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
